// Package https delivers files to an HTTPS receiver, one PUT per file,
// authenticated both ways: airlock presents its client certificate (mutual
// TLS) and trusts, for the receiver, only the CA file it is given — never
// the system roots, never an unverified certificate, never below TLS 1.2.
// It replaces the sidecar that PUT the egress service's files to a
// partner.
//
// A Sink does one attempt per Put and says whether another may succeed:
// errors wrapping ErrPermanent will not be fixed by retrying (a 4xx other
// than 408 and 429, a redirect, a receiver whose certificate fails
// verification, a client certificate the receiver refuses); every other
// error (5xx, 408, 429, a refused or dropped connection, a timeout) is
// worth a retry with backoff, which is the caller's durable job.
package https

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/redact"
)

// ErrPermanent marks a delivery failure that another attempt will not fix.
var ErrPermanent = errors.New("permanent https delivery failure")

// TLSFiles names the PEM files of the route's tls: key. CA is the only
// trust anchor for the receiver's certificate and is required for https.
// Cert and Key are airlock's client certificate and its private key, both
// or neither (the routes config requires them; a Sink without them is for
// receivers that do not ask, and for tests of those that do).
type TLSFiles struct{ Cert, Key, CA string }

// Options tune a Sink; the zero value gives the defaults.
type Options struct {
	// DialTimeout bounds connecting and the TLS handshake (default 30 s).
	DialTimeout time.Duration
	// ResponseTimeout bounds the wait for the answer once the body is sent
	// (default 2 min: a receiver may fsync a large file first).
	ResponseTimeout time.Duration
	// StallTimeout bounds each write to the connection, so a receiver that
	// stops reading mid-file fails the attempt instead of holding it
	// forever (default 2 min). There is no bound on a whole Put: files
	// may be large; the caller's ctx may set one.
	StallTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.DialTimeout <= 0 {
		o.DialTimeout = 30 * time.Second
	}
	if o.ResponseTimeout <= 0 {
		o.ResponseTimeout = 2 * time.Minute
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = 2 * time.Minute
	}
	return o
}

// Sink PUTs files under one base URL. It is safe for concurrent use.
type Sink struct {
	base     string // scheme://host/prefix/, escaped, ending in "/"
	describe string
	client   *http.Client
}

// New returns a Sink that PUTs under base, an https:// URL whose path is
// the prefix (a trailing "/" is implied). http:// is accepted only to a
// loopback host (a receiver on the same machine), and then without TLS
// files. base may not carry credentials, a query or a fragment: the
// client certificate is the credential. Errors name the file that failed.
func New(base string, files TLSFiles, opts Options) (*Sink, error) {
	u, err := url.Parse(base)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("https sink: url: %w", err)
	}
	shown := redact.Parsed(u)
	switch {
	case u.Host == "":
		return nil, fmt.Errorf("https sink %s: url has no host", shown)
	case u.User != nil:
		return nil, fmt.Errorf("https sink %s: url has credentials; the client certificate (tls.cert) authenticates airlock", shown)
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, fmt.Errorf("https sink %s: url has a query or fragment; put the prefix in the path", shown)
	}
	var tlsConf *tls.Config
	switch u.Scheme {
	case "https":
		if tlsConf, err = loadTLS(files); err != nil {
			return nil, fmt.Errorf("https sink %s: %w", shown, err)
		}
	case "http":
		if !config.IsLoopback(u.Hostname()) {
			return nil, fmt.Errorf("https sink %s: http is allowed only to a loopback address, not %q; use https", shown, u.Hostname())
		}
		if files != (TLSFiles{}) {
			return nil, fmt.Errorf("https sink %s: tls files are set but the url is http; use https", shown)
		}
	default:
		return nil, fmt.Errorf("https sink %s: url scheme %q: want https (or http to a loopback address)", shown, u.Scheme)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
		u.RawPath = ""
	}
	s := &Sink{base: u.Scheme + "://" + u.Host + u.EscapedPath()}
	s.describe = describe(s.base, tlsConf, files)
	s.client = newClient(tlsConf, opts.withDefaults())
	return s, nil
}

// loadTLS reads the CA and the client certificate: TLS 1.2 or later, the
// receiver verified against the CA alone.
func loadTLS(files TLSFiles) (*tls.Config, error) {
	if files.CA == "" {
		return nil, errors.New("tls.ca is required: the receiver's certificate is verified against it alone")
	}
	caPEM, err := os.ReadFile(files.CA)
	if err != nil {
		return nil, fmt.Errorf("tls.ca: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("tls.ca %s: no PEM certificate in it", files.CA)
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	if (files.Cert == "") != (files.Key == "") {
		return nil, errors.New("tls.cert and tls.key go together: set both or neither")
	}
	if files.Cert == "" {
		return conf, nil
	}
	certPEM, err := os.ReadFile(files.Cert)
	if err != nil {
		return nil, fmt.Errorf("tls.cert: %w", err)
	}
	keyPEM, err := os.ReadFile(files.Key)
	if err != nil {
		return nil, fmt.Errorf("tls.key: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls.cert %s with tls.key %s: %w", files.Cert, files.Key, err)
	}
	conf.Certificates = []tls.Certificate{pair}
	// Always present it, even when the receiver names other CAs (Go would
	// then send none): its refusal then says what is wrong with ours.
	conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
	return conf, nil
}

// describe says where files go and with which certificate; the key and
// its path stay out of logs.
func describe(base string, conf *tls.Config, files TLSFiles) string {
	switch {
	case conf == nil:
		return base + " (plain http, loopback)"
	case len(conf.Certificates) == 0:
		return fmt.Sprintf("%s (no client certificate, ca %s)", base, files.CA)
	}
	leaf := conf.Certificates[0].Leaf
	return fmt.Sprintf("%s (client certificate %q until %s, ca %s)",
		base, leaf.Subject.CommonName, leaf.NotAfter.UTC().Format(time.DateOnly), files.CA)
}

// Describe returns the base URL, the client certificate's subject and
// expiry and the CA file, for logs: no secrets.
func (s *Sink) Describe() string { return s.describe }

func newClient(conf *tls.Config, o Options) *http.Client {
	dialer := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = conf
	t.TLSHandshakeTimeout = o.DialTimeout
	t.ResponseHeaderTimeout = o.ResponseTimeout
	// A receiver can refuse (403, a missing certificate) before gigabytes
	// are sent; one that ignores Expect gets the body after a second.
	t.ExpectContinueTimeout = time.Second
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &stallConn{Conn: c, stall: o.StallTimeout}, nil
	}
	return &http.Client{
		Transport: t,
		// A redirect cannot be followed with a streamed body, and would
		// send the file somewhere nobody configured: Put reports it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// stallConn fails a write that makes no progress for stall.
type stallConn struct {
	net.Conn
	stall time.Duration
}

func (c *stallConn) Write(p []byte) (int, error) {
	if err := c.SetWriteDeadline(time.Now().Add(c.stall)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}
