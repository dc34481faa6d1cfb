package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/config"
)

// newTestMailer returns a Mailer for srv that trusts its certificate.
func newTestMailer(t *testing.T, srv *testServer, cfg config.SMTP, env map[string]string) *Mailer {
	t.Helper()
	cfg.Addr = srv.Addr
	if cfg.From == "" {
		cfg.From = "Airlock <airlock@example.org>"
	}
	m, err := NewMailer(cfg, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	m.TLSConfig = &tls.Config{RootCAs: srv.Roots}
	return m
}

// TestSendPlain: a message goes out with proper headers, a
// quoted-printable body that survives dots and long lines, and one
// envelope recipient per address.
func TestSendPlain(t *testing.T) {
	t.Parallel()
	srv := startServer(t, serverOpts{tls: "none"})
	m := newTestMailer(t, srv, config.SMTP{TLS: "none"}, nil)
	body := "Hello,\n\n.\nA line with a dot above, and a long one: " + strings.Repeat("long ", 40) +
		"\nUmlauts: Schlüssel läuft ab = soon\r\nWindows line ending above.\n"
	msg := Message{
		To:      []string{"Data Team <data@acme.example>", "second@acme.example"},
		Cc:      []string{"ops@example.org", "DATA@acme.example"}, // the duplicate is one recipient
		Subject: "airlock: Schlüssel for acme expires",
		Body:    body,
	}
	if err := m.Send(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	msgs := srv.messages()
	if len(msgs) != 1 {
		t.Fatalf("server got %d messages, want 1", len(msgs))
	}
	got := msgs[0]
	if got.From != "airlock@example.org" || got.TLS || got.User != "" {
		t.Errorf("envelope from %q, TLS %v, user %q", got.From, got.TLS, got.User)
	}
	if want := []string{"data@acme.example", "second@acme.example", "ops@example.org"}; !reflect.DeepEqual(got.To, want) {
		t.Errorf("envelope recipients %q, want %q", got.To, want)
	}

	parsed, err := mail.ReadMessage(strings.NewReader(got.Data))
	if err != nil {
		t.Fatal(err)
	}
	h := parsed.Header
	subject, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"From":                      `"Airlock" <airlock@example.org>`,
		"To":                        `"Data Team" <data@acme.example>, <second@acme.example>`,
		"Cc":                        `<ops@example.org>, <DATA@acme.example>`,
		"Mime-Version":              "1.0",
		"Content-Type":              "text/plain; charset=utf-8",
		"Content-Transfer-Encoding": "quoted-printable",
		"Auto-Submitted":            "auto-generated",
	} {
		if h.Get(name) != want {
			t.Errorf("%s: %q, want %q", name, h.Get(name), want)
		}
	}
	if subject != msg.Subject {
		t.Errorf("subject %q, want %q", subject, msg.Subject)
	}
	if d, err := h.Date(); err != nil || time.Since(d).Abs() > time.Minute {
		t.Errorf("Date %q: %v", h.Get("Date"), err)
	}
	if id := h.Get("Message-Id"); !regexp.MustCompile(`^<[0-9a-f]{32}@example\.org>$`).MatchString(id) {
		t.Errorf("Message-ID %q", id)
	}
	for i, line := range strings.Split(got.Data, "\r\n") {
		if len(line) > 78 {
			t.Errorf("line %d is %d bytes long", i, len(line))
		}
	}
	decoded, err := io.ReadAll(quotedprintable.NewReader(parsed.Body))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.ReplaceAll(strings.ReplaceAll(body, "\r\n", "\n"), "\n", "\r\n")
	if string(decoded) != want {
		t.Errorf("body:\n%q\nwant\n%q", decoded, want)
	}
}

// TestSendTLSAndAuth: STARTTLS and implicit TLS, each with AUTH PLAIN
// checked by the server; and AUTH PLAIN over a plain loopback connection.
func TestSendTLSAndAuth(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"starttls", "implicit", "none"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, serverOpts{tls: mode, user: "airlock", pass: "s3cret"})
			m := newTestMailer(t, srv, config.SMTP{TLS: mode, Username: "airlock", PasswordEnv: "PW"}, map[string]string{"PW": "s3cret"})
			if err := m.Send(t.Context(), Message{To: []string{"data@acme.example"}, Subject: "hi", Body: "hello"}); err != nil {
				t.Fatal(err)
			}
			msgs := srv.messages()
			if len(msgs) != 1 {
				t.Fatalf("server got %d messages, want 1", len(msgs))
			}
			if msgs[0].User != "airlock" || msgs[0].TLS != (mode != "none") {
				t.Errorf("user %q, TLS %v", msgs[0].User, msgs[0].TLS)
			}
		})
	}
}

// TestSendFailures: each failing step is named in the error, and nothing
// is delivered.
func TestSendFailures(t *testing.T) {
	t.Parallel()
	msg := Message{To: []string{"data@acme.example", "gone@acme.example"}, Subject: "hi", Body: "hello"}
	tests := []struct {
		name    string
		server  serverOpts
		cfg     config.SMTP
		env     map[string]string
		untrust bool // do not trust the server's certificate
		want    string
	}{
		{
			name:   "wrong password",
			server: serverOpts{tls: "starttls", user: "airlock", pass: "s3cret"},
			cfg:    config.SMTP{TLS: "starttls", Username: "airlock", PasswordEnv: "PW"},
			env:    map[string]string{"PW": "guess"},
			want:   "auth: 454",
		},
		{
			name:   "authentication required",
			server: serverOpts{tls: "starttls", user: "airlock", pass: "s3cret"},
			cfg:    config.SMTP{TLS: "starttls"},
			want:   "mail from: 502",
		},
		{
			name:   "no STARTTLS on offer",
			server: serverOpts{tls: "none"},
			cfg:    config.SMTP{TLS: "starttls"},
			want:   "starttls: the server does not offer STARTTLS",
		},
		{
			name:    "untrusted certificate",
			server:  serverOpts{tls: "starttls"},
			cfg:     config.SMTP{TLS: "starttls"},
			untrust: true,
			want:    "starttls: tls: failed to verify certificate",
		},
		{
			name:   "recipient refused",
			server: serverOpts{tls: "starttls", refuseRcpt: "gone@acme.example"},
			cfg:    config.SMTP{TLS: "starttls"},
			want:   "rcpt to <gone@acme.example>: 550",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, tt.server)
			m := newTestMailer(t, srv, tt.cfg, tt.env)
			if tt.untrust {
				m.TLSConfig = nil
			}
			err := m.Send(t.Context(), msg)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "send mail via "+srv.Addr+": ") {
				t.Errorf("Send: %v\nwant an error naming %s with %q", err, srv.Addr, tt.want)
			}
			if n := len(srv.messages()); n != 0 {
				t.Errorf("server got %d messages, want none", n)
			}
		})
	}

	t.Run("nobody listening", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		m, err := NewMailer(config.SMTP{Addr: addr, From: "a@example.org", TLS: "none"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = m.Send(t.Context(), msg)
		if err == nil || !strings.Contains(err.Error(), "send mail via "+addr+": dial: ") {
			t.Errorf("Send: %v", err)
		}
	})
}

// TestSendGivesUp: a server that accepts but never answers does not hold
// Send past its context's deadline, its cancellation, or Mailer.Timeout.
func TestSendGivesUp(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan []net.Conn, 1)
	go func() {
		var conns []net.Conn // held open, silent, until the test ends
		for {
			c, err := ln.Accept()
			if err != nil {
				accepted <- conns
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for _, c := range <-accepted {
			c.Close()
		}
	})
	msg := Message{To: []string{"data@acme.example"}, Subject: "hi", Body: "hello"}
	newMailer := func() *Mailer {
		m, err := NewMailer(config.SMTP{Addr: ln.Addr().String(), From: "a@example.org", TLS: "none"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		tune func(*Mailer)
		want error
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 200*time.Millisecond)
		}, nil, context.DeadlineExceeded},
		{"cancel", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(200*time.Millisecond, cancel)
			return ctx, cancel
		}, nil, context.Canceled},
		{"mailer timeout", func() (context.Context, context.CancelFunc) {
			return context.WithCancel(context.Background())
		}, func(m *Mailer) { m.Timeout = 200 * time.Millisecond }, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newMailer()
			if tt.tune != nil {
				tt.tune(m)
			}
			ctx, cancel := tt.ctx()
			defer cancel()
			start := time.Now()
			err := m.Send(ctx, msg)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), "greeting") {
				t.Errorf("Send: %v, want %v during the greeting", err, tt.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Send took %v", d)
			}
		})
	}
}

// TestSendRefusesHeaderInjection: no caller-supplied value can add a
// header or a recipient; nothing is sent.
func TestSendRefusesHeaderInjection(t *testing.T) {
	t.Parallel()
	srv := startServer(t, serverOpts{tls: "none"})
	m := newTestMailer(t, srv, config.SMTP{TLS: "none"}, nil)
	tests := []struct {
		name string
		msg  Message
		want string
	}{
		{"CRLF in subject", Message{To: []string{"a@acme.example"}, Subject: "hi\r\nBcc: evil@example.net"}, "subject must not contain line breaks"},
		{"LF in subject", Message{To: []string{"a@acme.example"}, Subject: "hi\nBcc: evil@example.net"}, "subject must not contain line breaks"},
		{"CRLF in to", Message{To: []string{"a@acme.example\r\nBcc: evil@example.net"}, Subject: "hi"}, "to: address"},
		{"LF in display name", Message{To: []string{"\"A\nBcc: evil@example.net\" <a@acme.example>"}, Subject: "hi"}, "to: address"},
		{"CR in cc", Message{To: []string{"a@acme.example"}, Cc: []string{"b@acme.example\rX: y"}, Subject: "hi"}, "cc: address"},
		{"two addresses in one", Message{To: []string{"a@acme.example, evil@example.net"}, Subject: "hi"}, "is not an email address"},
		{"no recipients", Message{Subject: "hi"}, "no recipients"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := m.Send(t.Context(), tt.msg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Send: %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if n := len(srv.messages()); n != 0 {
		t.Errorf("server got %d messages, want none", n)
	}
}

func TestNewMailer(t *testing.T) {
	t.Parallel()
	env := map[string]string{"PW": "s3cret"}
	getenv := func(k string) string { return env[k] }
	tests := []struct {
		name string
		cfg  config.SMTP
		want string // "" for success
	}{
		{"starttls with auth", config.SMTP{Addr: "smtp.example.org:587", From: "a@example.org", Username: "u", PasswordEnv: "PW", TLS: "starttls"}, ""},
		{"tls defaults to starttls", config.SMTP{Addr: "smtp.example.org:587", From: "a@example.org"}, ""},
		{"none on localhost", config.SMTP{Addr: "localhost:25", From: "a@example.org", TLS: "none"}, ""},
		{"none elsewhere", config.SMTP{Addr: "smtp.example.org:25", From: "a@example.org", TLS: "none"}, `smtp: tls "none" is allowed only for a loopback address, not "smtp.example.org"`},
		{"unknown tls", config.SMTP{Addr: "smtp.example.org:25", From: "a@example.org", TLS: "ssl"}, `smtp: tls "ssl": want starttls, implicit or none`},
		{"password unset", config.SMTP{Addr: "smtp.example.org:587", From: "a@example.org", Username: "u", PasswordEnv: "NOPE"}, "smtp: the password environment variable NOPE is not set or empty"},
		{"username without password_env", config.SMTP{Addr: "smtp.example.org:587", From: "a@example.org", Username: "u"}, "smtp: username is set but password_env is not"},
		{"bad addr", config.SMTP{Addr: "smtp.example.org", From: "a@example.org"}, `smtp: addr "smtp.example.org" is not host:port`},
		{"bad from", config.SMTP{Addr: "smtp.example.org:587", From: "a@example.org\r\nBcc: x@y.z"}, "smtp: from: address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := NewMailer(tt.cfg, getenv)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("NewMailer: %v", err)
			case tt.want == "" && m == nil:
				t.Error("NewMailer returned nil")
			case tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.want)):
				t.Errorf("NewMailer: %v, want %q", err, tt.want)
			}
		})
	}
}
