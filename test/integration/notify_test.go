package integration

import (
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
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

type mailboxSession struct {
	box *mailbox
	to  []string
}

func (s *mailboxSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *mailboxSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}
func (s *mailboxSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.box.mu.Lock()
	defer s.box.mu.Unlock()
	s.box.msgs = append(s.box.msgs, strings.Join(s.to, ",")+"\n\n"+string(b))
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
		extra:     fmt.Sprintf("notify:\n  smtp:\n    addr: %q\n    from: \"airlock@example.org\"\n    tls: none\n  operators: [\"ops@example.org\"]\n", box.addr),
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
	if _, ok := g.findEvent(0, "key.expiry_notice", nil); !ok {
		t.Fatal("no key.expiry_notice audit event")
	}

	g.stop()
	g.start()
	if out, err := g.sftpBatch("acme", soon, "ls\n"); err != nil {
		t.Fatalf("a key that expires in 5 days still works: %v\n%s", err, out)
	}
	if n := len(box.messages()); n != 1 {
		t.Fatalf("%d notices after a restart, want still 1", n)
	}
}
