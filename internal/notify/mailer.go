// Package notify tells people what airlock did: email through an SMTP
// server, and the periodic notices (such as SSH keys about to expire) that
// go out by it.
package notify

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"os"
	"strings"
	"time"

	"github.com/airlock-gw/airlock/internal/config"
)

// Message is one plain-text email.
type Message struct {
	To      []string // addresses, optionally with display names
	Cc      []string // copied; may be empty
	Subject string
	Body    string // plain text; any line endings
}

// DefaultTimeout bounds one Send whose context has no deadline.
const DefaultTimeout = time.Minute

// Mailer sends email through one SMTP server. It opens a connection per
// message (notifications are rare) and is safe for concurrent use.
type Mailer struct {
	addr     string // host:port
	host     string
	from     *mail.Address
	username string
	password string
	tlsMode  string

	// TLSConfig, if not nil, is used for STARTTLS and implicit TLS instead
	// of the system defaults; its ServerName defaults to the host of the
	// server address. Tests set RootCAs here.
	TLSConfig *tls.Config
	// Timeout bounds a Send whose context has no deadline; 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// LocalName is the name given in EHLO; "" means "localhost".
	LocalName string
}

// NewMailer returns a Mailer for cfg. getenv (os.Getenv when nil) reads the
// password from the variable cfg.PasswordEnv names; it must be set and not
// empty, so that a missing secret shows at start, not at the first email.
func NewMailer(cfg config.SMTP, getenv func(string) string) (*Mailer, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil || host == "" {
		return nil, fmt.Errorf("smtp: addr %q is not host:port", cfg.Addr)
	}
	from, err := parseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("smtp: from: %w", err)
	}
	m := &Mailer{addr: cfg.Addr, host: host, from: from, username: cfg.Username, tlsMode: cfg.TLS}
	switch cfg.TLS {
	case "":
		m.tlsMode = config.TLSStartTLS
	case config.TLSStartTLS, config.TLSImplicit:
	case config.TLSNone:
		if !config.IsLoopback(host) {
			return nil, fmt.Errorf("smtp: tls %q is allowed only for a loopback address, not %q", cfg.TLS, host)
		}
	default:
		return nil, fmt.Errorf("smtp: tls %q: want starttls, implicit or none", cfg.TLS)
	}
	switch {
	case cfg.Username != "" && cfg.PasswordEnv == "":
		return nil, errors.New("smtp: username is set but password_env is not")
	case cfg.PasswordEnv != "":
		m.password = getenv(cfg.PasswordEnv)
		if m.password == "" {
			return nil, fmt.Errorf("smtp: the password environment variable %s is not set or empty", cfg.PasswordEnv)
		}
	}
	return m, nil
}

// Send delivers msg to the server, which accepts it for every recipient
// or Send fails. It gives up when ctx is done (or after Timeout when ctx
// has no deadline). Errors name the SMTP step that failed.
func (m *Mailer) Send(ctx context.Context, msg Message) error {
	rcpts, data, err := m.compose(msg)
	if err != nil {
		return fmt.Errorf("send mail: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cmp.Or(m.Timeout, DefaultTimeout))
		defer cancel()
	}
	if err := m.send(ctx, rcpts, data); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The connection's deadline is ctx's: let ctx catch up with it.
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
		if cerr := ctx.Err(); cerr != nil {
			// The connection's deadline fired: say why, in terms callers test.
			err = fmt.Errorf("%w (%v)", cerr, err)
		}
		return fmt.Errorf("send mail via %s: %w", m.addr, err)
	}
	return nil
}

// step labels an error with the SMTP operation that failed.
func step(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", op, err)
}

func (m *Mailer) send(ctx context.Context, rcpts []string, data []byte) error {
	conn, err := m.dial(ctx)
	if err != nil {
		return step("dial", err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		return step("dial", err)
	}
	// Cancellation without a deadline also interrupts a blocked read.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()

	c, err := smtp.NewClient(conn, m.host)
	if err != nil {
		return step("greeting", err)
	}
	defer c.Close()
	if err := c.Hello(cmp.Or(m.LocalName, "localhost")); err != nil {
		return step("hello", err)
	}
	if m.tlsMode == config.TLSStartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			// Never fall back to sending in clear.
			return step("starttls", errors.New("the server does not offer STARTTLS (set tls: implicit if it expects TLS from the start)"))
		}
		if err := c.StartTLS(m.tlsConfig()); err != nil {
			return step("starttls", err)
		}
	}
	if m.username != "" {
		// PlainAuth refuses to send the password without TLS except to
		// localhost, which is what tls: none allows.
		if err := c.Auth(smtp.PlainAuth("", m.username, m.password, m.host)); err != nil {
			return step("auth", err)
		}
	}
	if err := c.Mail(m.from.Address); err != nil {
		return step("mail from", err)
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r); err != nil {
			return step("rcpt to <"+r+">", err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return step("data", err)
	}
	if _, err := w.Write(data); err != nil {
		return step("data", err)
	}
	if err := w.Close(); err != nil {
		return step("data", err)
	}
	// The message is accepted once DATA ends; a failed QUIT loses nothing.
	_ = c.Quit()
	return nil
}

func (m *Mailer) dial(ctx context.Context) (net.Conn, error) {
	d := &net.Dialer{}
	if m.tlsMode == config.TLSImplicit {
		td := &tls.Dialer{NetDialer: d, Config: m.tlsConfig()}
		return td.DialContext(ctx, "tcp", m.addr)
	}
	return d.DialContext(ctx, "tcp", m.addr)
}

func (m *Mailer) tlsConfig() *tls.Config {
	cfg := &tls.Config{}
	if m.TLSConfig != nil {
		cfg = m.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = m.host
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	return cfg
}

// compose checks msg and returns the envelope recipients and the message
// as sent after DATA. Nothing a caller passes can add a header: CR and LF
// are refused in every header value.
func (m *Mailer) compose(msg Message) (rcpts []string, data []byte, err error) {
	if strings.ContainsAny(msg.Subject, "\r\n") {
		return nil, nil, errors.New("subject must not contain line breaks")
	}
	to, err := parseList("to", msg.To)
	if err != nil {
		return nil, nil, err
	}
	cc, err := parseList("cc", msg.Cc)
	if err != nil {
		return nil, nil, err
	}
	if len(to)+len(cc) == 0 {
		return nil, nil, errors.New("no recipients")
	}
	seen := map[string]bool{}
	for _, a := range append(to, cc...) {
		if key := strings.ToLower(a.Address); !seen[key] {
			seen[key] = true
			rcpts = append(rcpts, a.Address)
		}
	}

	var b bytes.Buffer
	header := func(name, value string) { fmt.Fprintf(&b, "%s: %s\r\n", name, value) }
	header("From", m.from.String())
	if len(to) > 0 {
		header("To", joinAddresses(to))
	}
	if len(cc) > 0 {
		header("Cc", joinAddresses(cc))
	}
	header("Subject", mime.QEncoding.Encode("utf-8", msg.Subject))
	header("Date", time.Now().Format(time.RFC1123Z))
	header("Message-ID", messageID(m.from.Address))
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	header("Auto-Submitted", "auto-generated") // RFC 3834: no auto-replies, please
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	body := strings.ReplaceAll(msg.Body, "\r\n", "\n")
	if _, err := qp.Write([]byte(body)); err != nil {
		return nil, nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, nil, err
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return rcpts, b.Bytes(), nil
}

func parseList(field string, addrs []string) ([]*mail.Address, error) {
	var out []*mail.Address
	for _, s := range addrs {
		a, err := parseAddress(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// parseAddress parses one address, refusing control characters outright
// rather than trusting the parser with them.
func parseAddress(s string) (*mail.Address, error) {
	if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return nil, fmt.Errorf("address %q contains a control character", s)
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not an email address: %w", s, err)
	}
	return a, nil
}

func joinAddresses(as []*mail.Address) string {
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = a.String()
	}
	return strings.Join(parts, ", ")
}

// messageID returns a unique Message-ID in the sender's domain.
func messageID(from string) string {
	domain := "airlock.invalid"
	if i := strings.LastIndexByte(from, '@'); i >= 0 && i+1 < len(from) {
		domain = from[i+1:]
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails
	return "<" + hex.EncodeToString(b) + "@" + domain + ">"
}
