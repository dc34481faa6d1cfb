package https

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/airlock-gw/airlock/internal/redact"
)

// Headers the caller may set on a Put, so that receivers see the same
// names on every route. The file's name is the request path and its size
// the Content-Length; these add the rest. Values go as given; Put checks
// only that they are safe to send. Names go out in Go's canonical case
// (X-Content-Sha256): HTTP header names are case-insensitive.
const (
	// HeaderSHA256 is the hex SHA-256 of the body as sent, for the
	// receiver to check; Put refuses a value that is not 64 hex digits.
	HeaderSHA256 = "X-Content-SHA256"
	// HeaderBatch is the id of the batch the file belongs to.
	HeaderBatch = "X-Airlock-Batch"
	// HeaderTransfer is airlock's id of the transfer, the same on every
	// attempt, so that a receiver can drop a duplicate.
	HeaderTransfer = "X-Airlock-Transfer"
	// The data key of an envelope-encrypted body, rewrapped for the
	// recipient (base64), the id of the key it is wrapped under, and the
	// body's IV (base64): the egress metadata datakeyencryptionkeyid,
	// ciphertext and iv, as headers.
	HeaderDatakeyCiphertext = "X-Datakey-Ciphertext"
	HeaderDatakeyKeyID      = "X-Datakey-Encryption-Key-Id"
	HeaderDatakeyIV         = "X-Datakey-Iv"
)

// reserved are the headers Put sets itself or that would change how the
// body is framed; a caller's value for them is refused.
var reserved = map[string]bool{
	"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true,
	"Expect": true, "Te": true, "Trailer": true, "Upgrade": true, "Keep-Alive": true,
	"Proxy-Connection": true, "Authorization": true,
}

// errBodyLimit is how much of a refusal's body an error quotes.
const errBodyLimit = 200

// Put sends body, exactly size bytes, to the base URL + rel in one PUT,
// streamed: memory stays flat in the size. rel is a relative slash path;
// each segment is escaped, and empty, "." and ".." segments are refused.
// headers are sent as given (see HeaderSHA256 and the others). A body
// shorter or longer than size fails the attempt before its last byte is
// sent, so a receiver never acknowledges a truncated file.
//
// A size of Unsized is for bytes made on the way (compressed,
// encrypted): the body goes chunked, its end marked only once it has all
// been read, and its SHA-256 follows it as the trailer HeaderSHA256 (so
// headers may not carry that one).
//
// Success is a 2xx answer; any other answer is a *StatusError (with the
// receiver's Retry-After). An error wraps ErrPermanent when retrying
// cannot help (see the package comment); otherwise the caller retries
// later with a new body reader.
func (s *Sink) Put(ctx context.Context, rel string, body io.Reader, size int64, headers map[string]string) error {
	target, err := s.target(rel)
	if err != nil {
		return fmt.Errorf("https put %q: %w (%w)", rel, err, ErrPermanent)
	}
	req, src, err := newRequest(ctx, target, body, size)
	if err == nil {
		err = setHeaders(req.Header, headers)
	}
	if err == nil && size == Unsized && req.Header.Get(HeaderSHA256) != "" {
		err = fmt.Errorf("header %s of an unsized body goes as its trailer", HeaderSHA256)
	}
	if err != nil {
		return fmt.Errorf("https put %s: %w (%w)", target, err, ErrPermanent)
	}
	resp, err := s.client.Do(req)
	switch {
	case src.failed() != nil:
		if resp != nil {
			resp.Body.Close()
		}
		return fmt.Errorf("https put %s: %w", target, src.failed())
	case err != nil:
		return fmt.Errorf("https put %s: %w", target, classify(ctx, err))
	}
	defer resp.Body.Close()
	return answer(target, resp)
}

// Unsized is the size of a body whose length is known only at its end.
const Unsized = -1

// body is a request body that records why it failed, if it did.
type body interface {
	io.Reader
	failed() error
}

// newRequest frames the PUT of size bytes (or Unsized) from r.
func newRequest(ctx context.Context, target string, r io.Reader, size int64) (*http.Request, body, error) {
	var src body
	switch {
	case size == Unsized:
		src = &trailedReader{r: r, h: sha256.New()}
	case size >= 0:
		src = &exactReader{r: r, left: size}
	default:
		return nil, nil, fmt.Errorf("size %d", size)
	}
	var reqBody io.Reader = http.NoBody
	if size != 0 {
		reqBody = src
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, target, reqBody)
	if err != nil {
		return nil, nil, err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("User-Agent", "airlock")
	if size != 0 {
		req.Header.Set("Expect", "100-continue")
	}
	if t, ok := src.(*trailedReader); ok {
		req.Trailer = http.Header{http.CanonicalHeaderKey(HeaderSHA256): nil}
		t.trailer = req.Trailer
	}
	return req, src, nil
}

// target is the URL of rel under the base.
func (s *Sink) target(rel string) (string, error) {
	if rel == "" {
		return "", errors.New("empty path")
	}
	segs := strings.Split(rel, "/")
	for i, seg := range segs {
		if seg == "" || seg == "." || seg == ".." {
			return "", errors.New("path has an empty, . or .. segment")
		}
		segs[i] = url.PathEscape(seg)
	}
	return s.base + strings.Join(segs, "/"), nil
}

func setHeaders(h http.Header, headers map[string]string) error {
	for name, v := range headers {
		canon := textproto.CanonicalMIMEHeaderKey(name)
		switch {
		case !validName(name):
			return fmt.Errorf("header name %q is not a token", name)
		case reserved[canon] || strings.HasPrefix(canon, "Proxy-"):
			return fmt.Errorf("header %s is set by the sink, not the caller", canon)
		case strings.ContainsFunc(v, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }):
			return fmt.Errorf("header %s has a control character", canon)
		case canon == textproto.CanonicalMIMEHeaderKey(HeaderSHA256) && !isSHA256(v):
			return fmt.Errorf("header %s: %q is not 64 hex digits", canon, v)
		}
		h.Set(canon, v)
	}
	return nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r > '~' || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}

func isSHA256(s string) bool {
	return len(s) == 64 && strings.Trim(s, "0123456789abcdefABCDEF") == ""
}

// StatusError is a receiver's answer other than 2xx. It wraps
// ErrPermanent when another attempt cannot help.
type StatusError struct {
	Code int
	// RetryAfter is the wait the receiver asked for (Retry-After, in
	// seconds or as a date; with 429 and 503), 0 when it asked none: the
	// caller's backoff should wait at least as long.
	RetryAfter time.Duration
	msg        string
	permanent  bool
}

func (e *StatusError) Error() string { return e.msg }

func (e *StatusError) Unwrap() error {
	if e.permanent {
		return ErrPermanent
	}
	return nil
}

// answer turns the receiver's answer into nil (2xx) or a *StatusError
// quoting the status and the start of the body: nginx says there why it
// refused.
func answer(target string, resp *http.Response) error {
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		// Reading a short answer to its end lets the connection be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, errBodyLimit))
	e := &StatusError{Code: code, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	e.msg = fmt.Sprintf("https put %s: %s: %q", target, resp.Status, snippet)
	switch {
	case code >= 300 && code < 400:
		e.permanent = true
		if lu, err := resp.Request.URL.Parse(resp.Header.Get("Location")); err == nil {
			e.msg += " (redirect to " + redact.Parsed(lu) + " not followed)"
		}
	case code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests:
		e.permanent = true
	}
	if e.permanent {
		e.msg += ": " + ErrPermanent.Error()
	}
	return e
}

// retryAfter reads a Retry-After value: seconds, or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(secs) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil && at.After(now) {
		return at.Sub(now)
	}
	return 0
}

// alertCauses are the TLS alerts by which a receiver refuses airlock's
// client certificate or its TLS versions, with what they mean. crypto/tls
// reports a received alert as a net.OpError "remote error" around an
// unexported type, so they are known by their text.
var alertCauses = map[string]string{
	"tls: bad certificate":                refusedCert,
	"tls: unsupported certificate":        refusedCert,
	"tls: revoked certificate":            refusedCert,
	"tls: expired certificate":            refusedCert,
	"tls: unknown certificate":            refusedCert,
	"tls: unknown certificate authority":  refusedCert,
	"tls: access denied":                  refusedCert,
	"tls: certificate required":           refusedCert,
	"tls: protocol version not supported": "the receiver accepts no TLS version airlock offers (1.2 or later)",
}

const refusedCert = "the receiver refused airlock's client certificate"

// classify marks a failed request permanent when it failed on a
// certificate, which does not change by itself: the receiver's failed
// verification against tls.ca (an unknown CA, another host name, expired),
// the receiver refused ours or our TLS versions, or it does not speak TLS. Anything
// else (refused, reset, timed out, cancelled) may pass; it stays retryable.
func classify(ctx context.Context, err error) error {
	// url.Error repeats the URL; the caller's message names it once.
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	if ctx.Err() != nil {
		return err
	}
	var (
		verr   *tls.CertificateVerificationError
		unk    x509.UnknownAuthorityError
		host   x509.HostnameError
		inval  x509.CertificateInvalidError
		recErr tls.RecordHeaderError
		opErr  *net.OpError
	)
	switch {
	case errors.As(err, &verr), errors.As(err, &unk), errors.As(err, &host), errors.As(err, &inval):
		return fmt.Errorf("the receiver's certificate fails verification against tls.ca: %w (%w)", err, ErrPermanent)
	case errors.As(err, &opErr) && opErr.Op == "remote error" && alertCauses[opErr.Err.Error()] != "":
		return fmt.Errorf("%s: %w (%w)", alertCauses[opErr.Err.Error()], err, ErrPermanent)
	case errors.As(err, &recErr):
		return fmt.Errorf("the receiver does not speak TLS: %w (%w)", err, ErrPermanent)
	}
	// Go's own words for a connection dropped mid-body ("use of closed
	// network connection") do not say whose it was.
	return fmt.Errorf("no answer from the receiver (retryable): %w", err)
}

// exactReader passes on exactly left bytes of r and records why not, if
// not: a short body fails at its end, a longer one before its last byte
// is passed on.
type exactReader struct {
	r    io.Reader
	left int64
	err  error
}

func (e *exactReader) failed() error { return e.err }

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case e.left == 0:
		var one [1]byte
		if m, _ := io.ReadFull(e.r, one[:]); m > 0 {
			e.err = fmt.Errorf("body longer than its size: %w", ErrPermanent)
			return 0, e.err
		}
		return n, nil
	case err == io.EOF:
		e.err = fmt.Errorf("body ended %d bytes short of its size: %w", e.left, ErrPermanent)
		return n, e.err
	case err != nil:
		e.err = fmt.Errorf("read body: %w", err)
		return n, e.err
	}
	return n, nil
}

// trailedReader passes r on and, at its end, sets the trailer
// HeaderSHA256 to the SHA-256 of what it passed. The trailer is sent
// after the body's last chunk, which the transport writes only after
// this reader's EOF: a body cut short is never taken for whole.
type trailedReader struct {
	r       io.Reader
	h       hash.Hash
	trailer http.Header
	err     error
}

func (t *trailedReader) failed() error { return t.err }

func (t *trailedReader) Read(p []byte) (int, error) {
	if t.err != nil {
		return 0, t.err
	}
	n, err := t.r.Read(p)
	t.h.Write(p[:n])
	switch {
	case err == io.EOF:
		t.trailer.Set(HeaderSHA256, hex.EncodeToString(t.h.Sum(nil)))
	case err != nil:
		t.err = fmt.Errorf("read body: %w", err)
		return n, t.err
	}
	return n, err
}
