package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/airlock-gw/airlock/internal/notify"
)

// mailbox is a real SMTP server on 127.0.0.1 that keeps what it receives.
type mailbox struct {
	addr string
	mu   sync.Mutex
	msgs []string // each message: envelope recipients, a blank line, the data
}

func startMailbox(t *testing.T) *mailbox {
	t.Helper()
	m := &mailbox{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &mailboxSession{box: m}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.addr = ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { ln.Close(); srv.Close() })
	return m
}

func (m *mailbox) messages() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.msgs...)
}

// mailsTo returns the messages whose envelope includes to.
func (m *mailbox) mailsTo(to string) []string {
	var out []string
	for _, msg := range m.messages() {
		rcpts, _, _ := strings.Cut(msg, "\n\n")
		if strings.Contains(","+rcpts+",", ","+to+",") {
			out = append(out, msg)
		}
	}
	return out
}

// waitMail waits (bounded) for a message to to that contains each of
// parts, and returns it.
func (m *mailbox) waitMail(t *testing.T, to string, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		for _, msg := range m.mailsTo(to) {
			if containsAll(msg, parts...) {
				return msg
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no email to %s containing %q within 15s; it has %d:\n%s", to, parts, len(m.mailsTo(to)), strings.Join(m.mailsTo(to), "\n----\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

type mailboxSession struct {
	box *mailbox
	to  []string
}

func (s *mailboxSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *mailboxSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

// Data keeps the message with its body decoded (airlock sends quoted-
// printable), so that tests search the text as a reader sees it.
func (s *mailboxSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	text := string(b)
	if msg, err := mail.ReadMessage(bytes.NewReader(b)); err == nil {
		body := msg.Body
		if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
			body = quotedprintable.NewReader(body)
		}
		if decoded, err := io.ReadAll(body); err == nil {
			head, _, _ := strings.Cut(strings.ReplaceAll(text, "\r\n", "\n"), "\n\n")
			text = head + "\n\n" + string(decoded)
		}
	}
	s.box.mu.Lock()
	defer s.box.mu.Unlock()
	s.box.msgs = append(s.box.msgs, strings.Join(s.to, ",")+"\n\n"+text)
	return nil
}
func (s *mailboxSession) Reset()        { s.to = nil }
func (s *mailboxSession) Logout() error { return nil }

// TestKeyExpiryNotice: airlock serve emails a supplier, copying the
// operators, once about a key that expires soon, and not again after a
// restart.
func TestKeyExpiryNotice(t *testing.T) {
	t.Parallel()
	box := startMailbox(t)
	soon := newClientKey(t)
	soon.expires = time.Now().UTC().AddDate(0, 0, 5).Format(time.DateOnly)
	g := newGateway(t, gatewayOpts{
		mail:      box,
		suppliers: []supplierSpec{{name: "acme", keys: []clientKey{soon, newClientKey(t)}}},
	})
	g.start()
	eventually(t, 10*time.Second, "the expiry notice", func() bool { return len(box.messages()) == 1 })
	msg := box.messages()[0]
	for _, want := range []string{"acme@example.org", "ops@example.org", soon.expires, "Subject: "} {
		if !strings.Contains(msg, want) {
			t.Fatalf("the notice lacks %q:\n%s", want, msg)
		}
	}
	// The notice is recorded just after it is sent.
	eventually(t, 10*time.Second, "the key.expiry_notice audit event", func() bool {
		_, ok := g.findEvent(0, "key.expiry_notice", nil)
		return ok
	})

	g.stop()
	g.start()
	if out, err := g.sftpBatch("acme", soon, "ls\n"); err != nil {
		t.Fatalf("a key that expires in 5 days still works: %v\n%s", err, out)
	}
	if n := len(box.messages()); n != 1 {
		t.Fatalf("%d notices after a restart, want still 1", n)
	}
}

// webhookReceiver is an HTTP endpoint on 127.0.0.1 that keeps every
// notification airlock posts and checks its signature.
type webhookReceiver struct {
	srv    *httptest.Server
	secret string
	mu     sync.Mutex
	calls  []webhookCall
}

// webhookCall is one request the receiver got.
type webhookCall struct {
	Event, Delivery string // the X-Airlock-Event and X-Airlock-Delivery headers
	SignatureOK     bool   // X-Airlock-Signature-256 verifies under the secret
	Body            []byte
	Payload         notify.WebhookBody
}

func startWebhookReceiver(t *testing.T) *webhookReceiver {
	t.Helper()
	w := &webhookReceiver{secret: "itest-webhook-secret-" + t.Name()}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		c := webhookCall{
			Event:       r.Header.Get("X-Airlock-Event"),
			Delivery:    r.Header.Get("X-Airlock-Delivery"),
			SignatureOK: notify.VerifySignature([]byte(w.secret), body, r.Header.Get("X-Airlock-Signature-256")),
			Body:        body,
		}
		if err := decodePayload(body, &c.Payload); err != nil {
			c.Payload.Event = "undecodable: " + err.Error()
		}
		w.mu.Lock()
		w.calls = append(w.calls, c)
		w.mu.Unlock()
		rw.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(w.srv.Close)
	return w
}

// decodePayload decodes a webhook body, which must have every documented
// field: a renamed or dropped one would break receivers silently.
func decodePayload(body []byte, p *notify.WebhookBody) error {
	var fields struct {
		Top      map[string]json.RawMessage
		Transfer map[string]json.RawMessage
	}
	if err := json.Unmarshal(body, &fields.Top); err != nil {
		return err
	}
	if err := json.Unmarshal(fields.Top["transfer"], &fields.Transfer); err != nil {
		return fmt.Errorf("transfer: %w", err)
	}
	for _, k := range []string{"event", "delivery_id", "sent_at"} {
		if _, ok := fields.Top[k]; !ok {
			return fmt.Errorf("no %q", k)
		}
	}
	for _, k := range []string{"id", "supplier", "path", "size", "sha256", "scan_result", "destination", "error", "at"} {
		if _, ok := fields.Transfer[k]; !ok {
			return fmt.Errorf("no transfer.%q", k)
		}
	}
	return json.Unmarshal(body, p)
}

func (w *webhookReceiver) url() string { return w.srv.URL + "/airlock" }

func (w *webhookReceiver) received() []webhookCall {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]webhookCall(nil), w.calls...)
}

// waitCall waits (bounded) for the call about event for transfer id.
func (w *webhookReceiver) waitCall(t *testing.T, event, id string) webhookCall {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		for _, c := range w.received() {
			if c.Payload.Event == event && c.Payload.Transfer.ID == id {
				return c
			}
		}
		if time.Now().After(deadline) {
			var got []string
			for _, c := range w.received() {
				got = append(got, fmt.Sprintf("%s %s", c.Event, c.Payload.Transfer.ID))
			}
			t.Fatalf("no webhook %s for transfer %s within 15s; got %q", event, id, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
