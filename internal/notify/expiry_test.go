package notify

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
)

// Public keys generated with ssh-keygen for these tests (private halves discarded).
const (
	keyA = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDr5tW0lT06rzWs+t3WxQuXYObh8M7xGzlw1GmLBMTTT acme laptop"
	fpA  = "SHA256:sGNdwhbN7Uqr3cR7gCueZHGNSON2kUongZ0ELmR0OA8"
	keyB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBQjhbCjzbCYPtSQnqmAPGekhcENiaIkavO9zyiuOWXL acme spare"
	fpB  = "SHA256:Jc8mCbAec0InxaJdatVd+VmBAMHNCcM8k2HMGsxnhHc"
	keyC = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCm+xeKV1S7mKl5x9Ts8EH1ikIvKVlzOjh10UjdBZEssLEcdmRSMaMGmlZ3QyMt1GA/xpDYhlwEHw/ocZU1yU6uDoxk6I24yISqvctYbeAI91jxIHCq3suw9usveYyMyZ00qOdR8vZf7GCyIgZn6oQoG7r43dAuKOowKyP8FlCQPVae3npWn69X1ux0JkKa5ipBdVJPmWujuKwnKUHeMrVPvrOz1IJjuMMhFSa+32gxg+Wmr3QvRuzZSmgDqQnPHH7KnKuCmLSJV7UP/ZA70+75XzQaPKONDZE6iX5wJuYyM9hG+ZCn4bs7CPhNcuNe+wwr6xTO6K7XXEflR0TCEfT1 acme 2048"
	keyG = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGfJMeGP/K4Y+8u0hbcapawjKfwacnR+Rnp5joIbtOqk globex sftp"
	fpG  = "SHA256:wLUbSoSPPHFbIeDyz6O3+a6Xjs52LxaDLosMRKIWKy0"
	keyH = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQCbORLRqXv2/1CII75jiiHkTH2UeAJK/3Dc5Nb/d2DiNpRRH/x+aaA5bZ6vTTIuOQXrvvxlNLeuUGEogBxCb+9BUNcclnWLysAvROOrZro4S5i6SV4xFhlSmGPVeMY14Yx8aEteFde25IY7Q3azqJ8imMNfM4JowMq4jKSPUPIApQJ28Eb+fUtgKeUJ2KiAHbCNggsWU3khu8dL4iuYdcr0SJoXHSskNzyGlUIoxwA3QC08LVp6wo/SofwLuC+IRManIOWPpckfdnrBQTBQODXanPe1Tppz4LzQ5+hS2h6iDhUx7X4d9zZSi56Q4IJcJ9QRoDwi8WkPhL5thY6Z9o3sQkUEzXBCUAaaCt/rPjfuKC5z5Omj6R5+oqOLenYENN2DhyUdVD3obT1ehYRUGc0YzHNqcYa+gRuETY3O7ViEyMhyWFJGlPSX6+KiURgvg7Jt2afxj1VydJ7nAjaj6vimitDvjtIZoJV2yu33zytsHfvn67H3K71P5CdCx+ZBbY0= globex build"
)

// The clock starts at start; acme's key A expires within the 14-day lead,
// B in 20 days (outside it), C has expired, and globex's G expires within
// the lead while H never does.
var start = time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)

const acmeYAML = `name: acme
email: "Acme Data <data@acme.example>"
allowed_ips: ["203.0.113.0/24"]
ssh_keys:
  - {key: "` + keyA + `", expires: 2027-03-10}
  - {key: "` + keyB + `", expires: 2027-03-21}
  - {key: "` + keyC + `", expires: 2027-02-27}
destination:
  url: s3://land/acme
`

const globexYAML = `name: globex
email: sftp@globex.example
allowed_ips: ["192.0.2.10"]
ssh_keys:
  - key: "` + keyG + `"
    expires: "2027-03-02T09:30:00Z"
  - "` + keyH + `"
destination:
  url: s3://land/globex
`

// clock is a fake time source that tests move forward.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// fixture is a notifier over a supplier tree, a SQLite ledger and a real
// SMTP server.
type fixture struct {
	n      *KeyExpiryNotifier
	srv    *testServer
	ledger *ledger.Ledger
	clock  *clock
	logs   *syncBuffer
}

func newFixture(t *testing.T, serverOpts serverOpts, withMailer bool) *fixture {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "suppliers")
	for name, content := range map[string]string{"acme.yaml": acmeYAML, "globex.yaml": globexYAML} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	suppliers, err := config.LoadSuppliers(dir, root)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(t.Context(), "sqlite:"+filepath.Join(root, "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	f := &fixture{srv: startServer(t, serverOpts), ledger: l, clock: &clock{t: start}, logs: &syncBuffer{}}
	f.n = &KeyExpiryNotifier{
		Suppliers: func() *config.Suppliers { return suppliers },
		Ledger:    l,
		Operators: []string{"ops@example.org"},
		Lead:      14 * 24 * time.Hour,
		Now:       f.clock.Now,
		Log:       slog.New(slog.NewTextHandler(f.logs, nil)),
	}
	if withMailer {
		f.n.Mailer = newTestMailer(t, f.srv, config.SMTP{TLS: "starttls"}, nil)
	}
	return f
}

// restarted returns a new notifier set up like f's, as after a restart.
func (f *fixture) restarted() *KeyExpiryNotifier {
	n := f.n
	return &KeyExpiryNotifier{Suppliers: n.Suppliers, Ledger: n.Ledger, Mailer: n.Mailer, Operators: n.Operators,
		Lead: n.Lead, Interval: n.Interval, Now: n.Now, Log: n.Log}
}

// notices returns the key expiry events in the audit log.
func (f *fixture) notices(t *testing.T) []ledger.Event {
	t.Helper()
	evs, err := f.ledger.Events(t.Context(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(evs, func(e ledger.Event) bool { return e.Kind != "key.expiry_notice" })
}

// summary is what a test checks of each message the server received.
func summary(t *testing.T, msgs []received) []string {
	t.Helper()
	var out []string
	for _, m := range msgs {
		p, err := mail.ReadMessage(strings.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s -> %s | cc %s | %s", m.From, strings.Join(m.To, " "), p.Header.Get("Cc"), p.Header.Get("Subject")))
	}
	slices.Sort(out)
	return out
}

func TestKeyExpiryNotices(t *testing.T) {
	t.Parallel()
	f := newFixture(t, serverOpts{tls: "starttls"}, true)
	ctx := t.Context()

	// Several checks, at the same moment and later: one email per key due.
	for range 3 {
		if err := f.n.CheckOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	f.clock.Set(start.Add(6 * time.Hour))
	if err := f.n.CheckOnce(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"airlock@example.org -> data@acme.example ops@example.org | cc <ops@example.org> | airlock: SSH key " + fpA + " for acme expires on 2027-03-10",
		"airlock@example.org -> sftp@globex.example ops@example.org | cc <ops@example.org> | airlock: SSH key " + fpG + " for globex expires on 2027-03-02",
	}
	if got := summary(t, f.srv.messages()); !reflect.DeepEqual(got, want) {
		t.Fatalf("messages:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	body := decodedBody(t, f.srv.messages()[0].Data)
	if !strings.Contains(body, "ssh-keygen -t ed25519") || !strings.Contains(body, "it will be refused") {
		t.Errorf("body does not say what to do:\n%s", body)
	}

	evs := f.notices(t)
	if len(evs) != 2 {
		t.Fatalf("%d notice events, want 2: %+v", len(evs), evs)
	}
	if d := evs[0].Detail; d["supplier"] == "" || d["fingerprint"] == "" || d["expires"] == "" || !strings.Contains(d["to"], "ops@example.org") {
		t.Errorf("event detail %v", d)
	}

	// A restart (a new notifier on the same ledger) sends nothing again.
	again := f.restarted()
	if err := again.CheckOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(f.srv.messages()); n != 2 {
		t.Errorf("after a restart: %d messages, want still 2", n)
	}

	// Key B comes within the lead time: its one email goes out.
	f.clock.Set(time.Date(2027, 3, 8, 0, 0, 0, 0, time.UTC))
	for range 2 {
		if err := f.n.CheckOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got := summary(t, f.srv.messages())
	if len(got) != 3 || !strings.Contains(strings.Join(got, "\n"), "SSH key "+fpB+" for acme expires on 2027-03-21") {
		t.Errorf("after B came due:\n%s", strings.Join(got, "\n"))
	}

	// Much later every key has expired: nothing more is sent.
	f.clock.Set(time.Date(2027, 12, 1, 0, 0, 0, 0, time.UTC))
	if err := f.n.CheckOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(f.srv.messages()); n != 3 {
		t.Errorf("after all expired: %d messages, want 3", n)
	}
	if n := len(f.notices(t)); n != 3 {
		t.Errorf("%d notice events, want 3", n)
	}
	if _, err := f.ledger.VerifyAudit(ctx); err != nil {
		t.Error(err)
	}
}

// TestKeyExpiryRetriesAfterFailure: a notice the server refused is not
// recorded, so the next check sends it.
func TestKeyExpiryRetriesAfterFailure(t *testing.T) {
	t.Parallel()
	f := newFixture(t, serverOpts{tls: "starttls", refuseRcpt: "sftp@globex.example"}, true)
	ctx := t.Context()
	err := f.n.CheckOnce(ctx)
	if err == nil || !strings.Contains(err.Error(), "key expiry notice to globex for "+fpG) || !strings.Contains(err.Error(), "rcpt to <sftp@globex.example>") {
		t.Fatalf("CheckOnce: %v, want globex's notice to fail", err)
	}
	if n := len(f.srv.messages()); n != 1 {
		t.Fatalf("%d messages, want acme's only", n)
	}
	if n := len(f.notices(t)); n != 1 {
		t.Fatalf("%d notice events, want acme's only", n)
	}

	// The mail server is fixed: the next check sends globex's notice only.
	good := startServer(t, serverOpts{tls: "starttls"})
	f.n.Mailer = newTestMailer(t, good, config.SMTP{TLS: "starttls"}, nil)
	if err := f.n.CheckOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if got := summary(t, good.messages()); len(got) != 1 || !strings.Contains(got[0], "for globex") {
		t.Errorf("after the fix: %q", got)
	}
}

// TestKeyExpiryWithoutMailer: without SMTP each notice is logged once and
// not recorded, so that it is emailed once SMTP is configured.
func TestKeyExpiryWithoutMailer(t *testing.T) {
	t.Parallel()
	f := newFixture(t, serverOpts{tls: "none"}, false)
	var nilMailer *Mailer
	f.n.Mailer = nilMailer // a typed nil counts as none
	ctx := t.Context()
	for range 3 {
		if err := f.n.CheckOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	logs := f.logs.String()
	if n := strings.Count(logs, "SSH key expires soon"); n != 2 {
		t.Errorf("%d warnings, want 2 (one per key due):\n%s", n, logs)
	}
	if !strings.Contains(logs, "fingerprint="+fpA) || !strings.Contains(logs, "level=WARN") {
		t.Errorf("logs:\n%s", logs)
	}
	if n := len(f.notices(t)); n != 0 {
		t.Errorf("%d notice events, want none", n)
	}
}

// TestKeyExpiryRun: Run checks at once, then every Interval, until ctx is done.
func TestKeyExpiryRun(t *testing.T) {
	t.Parallel()
	f := newFixture(t, serverOpts{tls: "starttls"}, true)
	f.n.Interval = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.n.Run(ctx) }()

	waitFor(t, func() bool { return len(f.srv.messages()) == 2 })
	f.clock.Set(time.Date(2027, 3, 8, 0, 0, 0, 0, time.UTC))
	waitFor(t, func() bool { return len(f.srv.messages()) == 3 })
	time.Sleep(100 * time.Millisecond) // several more checks
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if n := len(f.srv.messages()); n != 3 {
		t.Errorf("%d messages, want 3", n)
	}

	off := f.restarted()
	off.Lead = 0
	if err := off.Run(t.Context()); err != nil {
		t.Errorf("Run with notices disabled: %v", err)
	}
	if err := (&KeyExpiryNotifier{}).Run(t.Context()); err == nil {
		t.Error("Run without Suppliers and Ledger succeeded")
	}
}

// decodedBody returns the text of a quoted-printable message.
func decodedBody(t *testing.T, data string) string {
	t.Helper()
	p, err := mail.ReadMessage(strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(quotedprintable.NewReader(p.Body))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for the logger and the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
