package pipeline

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/ledger/ledgertest"
	"github.com/airlock-gw/airlock/internal/notify"
	"github.com/airlock-gw/airlock/internal/scan"
	"github.com/airlock-gw/airlock/internal/storage"
)

const (
	supplier = "acme"
	eicar    = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`
)

// fixture is a pipeline on a fresh ledger database and local stores,
// with the builtin scanner (or a wrapper around it) and a recording
// mailer.
type fixture struct {
	t          *testing.T
	root       string
	ledger     *ledger.Ledger
	landing    *storage.Store
	quarantine *storage.Store
	queue      *Queue
	workers    *Workers
	mailer     *recordingMailer
	metrics    *Metrics
	destDir    string
	deps       Deps
	settings   config.Pipeline
}

type fixtureOptions struct {
	scanner     Scanner       // default: the builtin scanner
	maxAttempts int           // default 5
	noMailer    bool          // nobody to notify but the log
	overwrite   string        // the supplier's overwrite policy; default: config's
	rescueAfter time.Duration // default 1h
	workers     int           // default 2
	retryDelay  time.Duration // retry_backoff and max_backoff; default 10ms and 50ms
	routes      map[string]Route
	webhook     Webhook // default: none
}

func newFixture(t *testing.T, dsn string, opts fixtureOptions) *fixture {
	t.Helper()
	ctx := t.Context()
	root := t.TempDir()
	f := &fixture{t: t, root: root, mailer: &recordingMailer{}, destDir: filepath.Join(root, "dest")}
	var err error
	if f.ledger, err = ledger.Open(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.ledger.Close() })
	if f.landing, err = storage.Open(ctx, filepath.Join(root, "landing")); err != nil {
		t.Fatal(err)
	}
	if f.quarantine, err = storage.Open(ctx, filepath.Join(root, "quarantine")); err != nil {
		t.Fatal(err)
	}
	if opts.scanner == nil {
		if opts.scanner, err = scan.NewBuiltin(""); err != nil {
			t.Fatal(err)
		}
	}
	suppliers := loadSuppliers(t, root, f.destDir, opts.overwrite)
	f.metrics = NewMetrics(prometheus.NewRegistry())
	deps := Deps{
		Ledger: f.ledger, Landing: f.landing, Quarantine: f.quarantine,
		Suppliers: func() *config.Suppliers { return suppliers },
		Scanner:   opts.scanner, TooLarge: config.TooLargeQuarantine,
		Operators: []string{"ops@example.org"},
		Metrics:   f.metrics, Log: testLogger(t),
		Routes: func(name string) (Route, bool) {
			r, ok := opts.routes[name]
			return r, ok
		},
	}
	if !opts.noMailer {
		deps.Mailer = f.mailer
	}
	deps.Webhook = opts.webhook
	f.deps = deps
	f.workers = NewWorkers(deps)
	t.Cleanup(func() { f.workers.Close() })
	f.settings = config.Pipeline{
		Workers: cmpOr(opts.workers, 2), MaxAttempts: cmpOr(opts.maxAttempts, 5),
		RetryBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, RescueAfter: cmp.Or(opts.rescueAfter, time.Hour),
	}
	if opts.retryDelay > 0 {
		f.settings.RetryBackoff, f.settings.MaxBackoff = opts.retryDelay, opts.retryDelay
	}
	if f.queue, err = Open(ctx, f.ledger, "test", f.settings, f.workers, testLogger(t)); err != nil {
		t.Fatal(err)
	}
	return f
}

func cmpOr(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// run works jobs until the test ends.
func (f *fixture) run() { f.runQueue(f.queue) }

// runQueue works q's jobs until the test ends.
func (f *fixture) runQueue(q *Queue) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(f.t.Context()))
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx, 0) }()
	f.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			f.t.Errorf("Run: %v", err)
		}
	})
}

func loadSuppliers(t *testing.T, root, destDir, overwrite string) *config.Suppliers {
	t.Helper()
	dir := filepath.Join(root, "suppliers")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	yaml := fmt.Sprintf("name: %s\nemail: data@acme.example\nallowed_ips: [\"127.0.0.1/32\"]\n"+
		"ssh_keys: [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGHRg4xxtZVaC0wTvFOxFwZ9MxrTArwvqGRmw8MQNVWG test\"]\n"+
		"destination:\n  url: %q\n", supplier, filepath.Join(destDir, supplier))
	if overwrite != "" {
		yaml += "overwrite: " + overwrite + "\n"
	}
	if err := os.WriteFile(filepath.Join(dir, supplier+".yaml"), []byte(yaml), 0o640); err != nil {
		t.Fatal(err)
	}
	s, err := config.LoadSuppliers(dir, root)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// land records an upload of data at p as the SFTP server does: the bytes
// in landing, the transfer received, and its job queued with it.
func (f *fixture) land(p string, data []byte) ledger.Transfer {
	f.t.Helper()
	ctx := f.t.Context()
	tr, err := f.ledger.Begin(ctx, ledger.NewTransfer(ledger.Transfer{Supplier: supplier, Path: p, LandingKey: supplier + "/" + hexSum(data)[:16] + filepath.Base(p)}), ledger.Event{})
	if err != nil {
		f.t.Fatal(err)
	}
	st, err := f.landing.Stage(ctx, tr.LandingKey, int64(len(data)))
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := st.Write(data); err != nil {
		f.t.Fatal(err)
	}
	if err := st.Commit(); err != nil {
		f.t.Fatal(err)
	}
	size, sum := int64(len(data)), hexSum(data)
	tr, err = f.ledger.Advance(ctx, tr.ID, []ledger.State{ledger.Receiving}, ledger.Received,
		ledger.Change{Size: &size, SHA256: &sum, InTx: f.queue.Admit}, ledger.Event{})
	if err != nil {
		f.t.Fatal(err)
	}
	return tr
}

// waitState waits for transfer id to reach state.
func (f *fixture) waitState(id string, state ledger.State) ledger.Transfer {
	f.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		tr, err := f.ledger.Get(f.t.Context(), id)
		if err != nil {
			f.t.Fatal(err)
		}
		if tr.State == state {
			return tr
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("transfer %s is %s (error %q), want %s", id, tr.State, tr.Error, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitMails waits for n emails.
func (f *fixture) waitMails(n int) []notify.Message {
	f.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		msgs := f.mailer.sent()
		if len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%d emails sent, want %d", len(msgs), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (f *fixture) files(dir string) []string {
	f.t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if errors.Is(err, os.ErrNotExist) {
			return filepath.SkipDir
		}
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return out
}

// landingFile is where tr's bytes are in the landing directory.
func (f *fixture) landingFile(tr ledger.Transfer) string {
	return filepath.Join(f.root, "landing", filepath.FromSlash(tr.LandingKey))
}

// writeFile writes data to p, making its directory first.
func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) eventKinds(id string) []string {
	f.t.Helper()
	evs, err := f.ledger.Events(f.t.Context(), id, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	kinds := make([]string, len(evs))
	for i, ev := range evs {
		kinds[i] = ev.Kind
	}
	return kinds
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

type recordingMailer struct {
	mu   sync.Mutex
	msgs []notify.Message
	fail atomic.Bool
}

func (m *recordingMailer) Send(_ context.Context, msg notify.Message) error {
	if m.fail.Load() {
		return errors.New("mail server down")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.msgs = append(m.msgs, msg)
	return nil
}

func (m *recordingMailer) sent() []notify.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.msgs)
}

// flakyScanner fails while down is set, then scans with the builtin scanner.
type flakyScanner struct {
	down  atomic.Bool
	calls atomic.Int32
	inner Scanner
}

func (s *flakyScanner) Scan(ctx context.Context, r io.Reader) (scan.Result, error) {
	s.calls.Add(1)
	if s.down.Load() {
		return scan.Result{}, fmt.Errorf("clamd: %w", scan.ErrUnavailable)
	}
	return s.inner.Scan(ctx, r)
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("AIRLOCK_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func TestCleanFileIsDelivered(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn, fixtureOptions{})
		f.run()
		data := []byte("id,value\n1,2\n")
		tr := f.land("/2026/data.csv", data)

		got := f.waitState(tr.ID, ledger.Delivered)
		if got.ScanResult != "clean (builtin)" || got.Error != "" ||
			got.Destination != filepath.Join(f.destDir, supplier, "2026/data.csv") {
			t.Errorf("delivered transfer = %+v", got)
		}
		if b, err := os.ReadFile(filepath.Join(f.destDir, supplier, "2026", "data.csv")); err != nil || string(b) != string(data) {
			t.Errorf("delivered bytes = %q, %v", b, err)
		}
		msgs := f.waitMails(2)
		var to []string
		for _, m := range msgs {
			to = append(to, m.To...)
			if !strings.Contains(m.Subject, "data.csv delivered") {
				t.Errorf("subject %q", m.Subject)
			}
		}
		slices.Sort(to)
		if !slices.Equal(to, []string{"data@acme.example", "ops@example.org"}) {
			t.Errorf("mailed %v", to)
		}
		// Landing is emptied after the outcome is recorded; give it a moment.
		deadline := time.Now().Add(5 * time.Second)
		for len(f.files(filepath.Join(f.root, "landing"))) > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if left := f.files(filepath.Join(f.root, "landing")); len(left) > 0 {
			t.Errorf("landing still holds %v", left)
		}
		// A notice is recorded just after its email is sent: the last one
		// may trail the mailbox by a moment.
		wantKinds := []string{"upload.start", "transfer.received", "transfer.scanning", "transfer.delivering", "transfer.delivered", "notify.sent", "notify.sent"}
		kinds := f.eventKinds(tr.ID)
		for deadline := time.Now().Add(5 * time.Second); !slices.Equal(kinds, wantKinds) && time.Now().Before(deadline); kinds = f.eventKinds(tr.ID) {
			time.Sleep(10 * time.Millisecond)
		}
		if !slices.Equal(kinds, wantKinds) {
			t.Errorf("events = %v, want %v", kinds, wantKinds)
		}
		if got := testutil.ToFloat64(f.metrics.outcomes.WithLabelValues("delivered")); got != 1 {
			t.Errorf("outcomes{delivered} = %v", got)
		}
		if n, err := f.ledger.VerifyAudit(t.Context()); err != nil || n == 0 {
			t.Errorf("VerifyAudit = %d, %v", n, err)
		}
	})
}

func TestWithoutChannelsNoNotifyJob(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn, fixtureOptions{noMailer: true})
		f.run()
		tr := f.land("/data.csv", []byte("data\n"))
		f.waitState(tr.ID, ledger.Delivered)
		var n int
		if err := f.ledger.DB().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM river_job WHERE kind = 'notify'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%d notify jobs queued with nobody to notify", n)
		}
		if got := testutil.ToFloat64(f.metrics.outcomes.WithLabelValues("delivered")); got != 1 {
			t.Errorf("outcomes{delivered} = %v", got)
		}
	})
}

// TestJobsSendNoNotifications: every node polls, so a job's insert writes
// no notification for a listener there is not (with SQLite, a row and its
// index entries in the commit of every upload).
func TestJobsSendNoNotifications(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "sqlite:"+filepath.Join(t.TempDir(), "ledger.db"), fixtureOptions{})
	f.run()
	for _, name := range []string{"/a.csv", "/b.csv"} {
		f.waitState(f.land(name, []byte("data\n")).ID, ledger.Delivered)
	}
	var n int
	if err := f.ledger.DB().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM river_notification`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d notifications written", n)
	}
}

func TestInfectedFileIsQuarantined(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn, fixtureOptions{})
		f.run()
		tr := f.land("/eicar.com", []byte(eicar))

		got := f.waitState(tr.ID, ledger.Quarantined)
		if !strings.Contains(got.ScanResult, "Eicar-Test-Signature") {
			t.Errorf("scan result %q", got.ScanResult)
		}
		want := []string{supplier + "/" + tr.ID + "/eicar.com"}
		if q := f.files(filepath.Join(f.root, "quarantine")); !slices.Equal(q, want) {
			t.Errorf("quarantine holds %v, want %v", q, want)
		}
		if d := f.files(f.destDir); len(d) > 0 {
			t.Errorf("an infected file reached the destination: %v", d)
		}
		for _, m := range f.waitMails(2) {
			if !strings.Contains(m.Subject, "quarantined") {
				t.Errorf("subject %q", m.Subject)
			}
		}
		if got := testutil.ToFloat64(f.metrics.scans.WithLabelValues("infected")); got != 1 {
			t.Errorf("scans{infected} = %v", got)
		}
	})
}

// hashlessScanner hides the builtin scanner's digest: the ingestion hashes
// the stream itself, as it does for clamd.
type hashlessScanner struct{ Scanner }

// TestChangedLandingBytesAreQuarantined, whether the scanner's digest or
// the ingestion's own hash finds the change.
func TestChangedLandingBytesAreQuarantined(t *testing.T) {
	t.Parallel()
	builtin, err := scan.NewBuiltin("")
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range []struct {
		name    string
		scanner Scanner
	}{
		{"the scanner's digest", builtin},
		{"hashed on the way", hashlessScanner{builtin}},
	} {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
				f := newFixture(t, dsn, fixtureOptions{scanner: sc.scanner})
				tr := f.land("/data.csv", []byte("what the supplier sent\n"))
				// Someone with access to landing swaps the bytes before the scan.
				writeFile(t, f.landingFile(tr), []byte("not that\n"))
				f.run()
				got := f.waitState(tr.ID, ledger.Quarantined)
				if !strings.HasPrefix(got.ScanResult, "checksum-mismatch") {
					t.Errorf("scan result %q", got.ScanResult)
				}
				if d := f.files(f.destDir); len(d) > 0 {
					t.Errorf("changed bytes reached the destination: %v", d)
				}
			})
		})
	}
}

func TestChangedInfectedBytesAreQuarantinedAsTheyAre(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn, fixtureOptions{})
		tr := f.land("/data.com", []byte("harmless\n"))
		// Swapped for malware after the upload: the quarantine keeps what
		// is there now, and says it changed.
		writeFile(t, f.landingFile(tr), []byte(eicar))
		f.run()
		got := f.waitState(tr.ID, ledger.Quarantined)
		if !strings.HasPrefix(got.ScanResult, "checksum-mismatch") || !strings.Contains(got.ScanResult, "Eicar") {
			t.Errorf("scan result %q", got.ScanResult)
		}
		held, err := os.ReadFile(filepath.Join(f.root, "quarantine", supplier, tr.ID, "data.com"))
		if err != nil || string(held) != eicar {
			t.Errorf("quarantined bytes = %q, %v", held, err)
		}
	})
}

// gatedScanner holds the scan of any file that starts with "old" until
// open is closed.
type gatedScanner struct {
	open      chan struct{}
	inner     Scanner
	cancelled atomic.Int32 // scans whose context ended while held
}

// newGatedScanner gates the builtin scanner.
func newGatedScanner(t *testing.T) *gatedScanner {
	t.Helper()
	builtin, err := scan.NewBuiltin("")
	if err != nil {
		t.Fatal(err)
	}
	return &gatedScanner{open: make(chan struct{}), inner: builtin}
}

func (s *gatedScanner) Scan(ctx context.Context, r io.Reader) (scan.Result, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return scan.Result{}, err
	}
	if strings.HasPrefix(string(b), "old") {
		select {
		case <-s.open:
		case <-ctx.Done():
			s.cancelled.Add(1)
			return scan.Result{}, ctx.Err()
		}
	}
	return s.inner.Scan(ctx, strings.NewReader(string(b)))
}

func TestUploadsOfOnePathAreDeliveredInOrder(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		gate := newGatedScanner(t)
		f := newFixture(t, dsn, fixtureOptions{scanner: gate})
		f.run()
		older := f.land("/data.csv", []byte("old version\n"))
		newer := f.land("/data.csv", []byte("new version\n"))

		// The newer upload is scanned, but must not reach the destination
		// before the older one: that would let the older overwrite it.
		f.waitState(newer.ID, ledger.Delivering)
		time.Sleep(300 * time.Millisecond)
		if got := f.mustGet(newer.ID); got.State != ledger.Delivering {
			t.Fatalf("the newer upload went on to %s while the older one was still being scanned", got.State)
		}
		close(gate.open)
		f.waitState(older.ID, ledger.Delivered)
		f.waitState(newer.ID, ledger.Delivered)
		if b, err := os.ReadFile(filepath.Join(f.destDir, supplier, "data.csv")); err != nil || string(b) != "new version\n" {
			t.Errorf("destination holds %q, %v; want the newer upload", b, err)
		}
		if got := f.mustGet(newer.ID); got.Attempts != 1 {
			t.Errorf("waiting cost the newer upload %d attempts, want 1", got.Attempts)
		}
	})
}

func TestScannerOutageWaitsThenDelivers(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		builtin, err := scan.NewBuiltin("")
		if err != nil {
			t.Fatal(err)
		}
		sc := &flakyScanner{inner: builtin}
		sc.down.Store(true)
		f := newFixture(t, dsn, fixtureOptions{scanner: sc, maxAttempts: 100})
		f.run()
		tr := f.land("/data.csv", []byte("data\n"))

		for sc.calls.Load() < 3 {
			time.Sleep(10 * time.Millisecond)
		}
		got, err := f.ledger.Get(t.Context(), tr.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != ledger.Scanning || !strings.Contains(got.Error, "scanner unavailable") {
			t.Errorf("while the scanner is down: state %s, error %q", got.State, got.Error)
		}
		if d := f.files(f.destDir); len(d) > 0 {
			t.Fatalf("delivered unscanned: %v", d)
		}
		sc.down.Store(false)
		if got := f.waitState(tr.ID, ledger.Delivered); got.Attempts < 3 || got.Error != "" {
			t.Errorf("after the outage: attempts %d, error %q", got.Attempts, got.Error)
		}
		if got := testutil.ToFloat64(f.metrics.retries.WithLabelValues("ingest")); got < 2 {
			t.Errorf("retries{ingest} = %v", got)
		}
	})
}

func TestExhaustedRetriesFailThenOperatorRetries(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn, fixtureOptions{maxAttempts: 2})
		// A file where the destination directory should be makes every
		// delivery fail.
		writeFile(t, filepath.Join(f.destDir, supplier), []byte("in the way"))
		f.run()
		tr := f.land("/data.csv", []byte("data\n"))
		failed := f.waitState(tr.ID, ledger.Failed)
		if failed.Error == "" {
			t.Error("failed without the last error")
		}
		msgs := f.waitMails(2)
		if !strings.Contains(msgs[0].Subject, "failed") {
			t.Errorf("subject %q", msgs[0].Subject)
		}

		if err := os.Remove(filepath.Join(f.destDir, supplier)); err != nil {
			t.Fatal(err)
		}
		op := &Operator{Ledger: f.ledger, Queue: f.queue, Landing: f.landing, Quarantine: f.quarantine, Actor: "operator:test"}
		if _, err := op.Retry(t.Context(), tr.ID); err != nil {
			t.Fatal(err)
		}
		f.waitState(tr.ID, ledger.Delivered)
		if _, err := op.Retry(t.Context(), tr.ID); !errors.Is(err, ErrNotAllowed) {
			t.Errorf("retry of a delivered transfer: %v, want ErrNotAllowed", err)
		}

		// A partial download is failed too, and the supplier's to repeat.
		sum, failure := hexSum([]byte("da")), "partial download"
		dl, err := f.ledger.Record(t.Context(), ledger.NewTransfer(ledger.Transfer{Direction: ledger.Egress, Supplier: supplier, Path: "/data.csv"}),
			ledger.Event{Kind: "download.start"}, ledger.Failed, ledger.Change{SHA256: &sum, Error: &failure}, ledger.Event{Kind: "download.partial"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := op.Retry(t.Context(), dl.ID); !errors.Is(err, ErrNotAllowed) {
			t.Errorf("retry of a download: %v, want ErrNotAllowed", err)
		}
	})
}

func TestQuarantineReleaseAndDelete(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn, fixtureOptions{})
		f.run()
		op := &Operator{Ledger: f.ledger, Queue: f.queue, Landing: f.landing, Quarantine: f.quarantine, Actor: "operator:test"}
		a := f.land("/a.com", []byte(eicar))
		b := f.land("/b.com", []byte(eicar+"\n"))
		f.waitState(a.ID, ledger.Quarantined)
		f.waitState(b.ID, ledger.Quarantined)

		if _, err := op.Release(t.Context(), a.ID, "", false); err == nil {
			t.Error("release without a reason succeeded")
		}
		// A rescan finds it again: it stays in quarantine, bytes and all.
		if _, err := op.Release(t.Context(), a.ID, "supplier says it is a test file", false); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for !slices.Contains(f.eventKinds(a.ID)[3:], "transfer.quarantined") || f.mustGet(a.ID).State != ledger.Quarantined {
			if time.Now().After(deadline) {
				t.Fatalf("released file not rescanned: %v", f.eventKinds(a.ID))
			}
			time.Sleep(10 * time.Millisecond)
		}
		if _, err := op.Release(t.Context(), a.ID, "approved by the data owner", true); err != nil {
			t.Fatal(err)
		}
		got := f.waitState(a.ID, ledger.Delivered)
		if !strings.Contains(got.ScanResult, "released without a rescan") {
			t.Errorf("scan result %q", got.ScanResult)
		}
		if b, err := os.ReadFile(filepath.Join(f.destDir, supplier, "a.com")); err != nil || string(b) != eicar {
			t.Errorf("released bytes = %q, %v", b, err)
		}

		if _, err := op.Delete(t.Context(), b.ID, "malware"); err != nil {
			t.Fatal(err)
		}
		if q := f.files(filepath.Join(f.root, "quarantine")); slices.ContainsFunc(q, func(p string) bool { return strings.Contains(p, b.ID) }) {
			t.Errorf("quarantine still holds the deleted file: %v", q)
		}
		if _, err := op.Release(t.Context(), b.ID, "too late", true); !errors.Is(err, ErrNotAllowed) {
			t.Errorf("release after delete: %v, want ErrNotAllowed", err)
		}
		kinds := f.eventKinds(b.ID)
		if kinds[len(kinds)-1] != "quarantine.delete" {
			t.Errorf("events of the deleted file: %v", kinds)
		}
	})
}

func (f *fixture) mustGet(id string) ledger.Transfer {
	f.t.Helper()
	tr, err := f.ledger.Get(f.t.Context(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return tr
}

func TestRerunAfterDeliveryCopiesNothing(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn, fixtureOptions{})
		data := []byte("once\n")
		tr := f.land("/once.csv", data)
		// A run that copied the file and then died before recording it: the
		// destination already holds the right bytes.
		dest := filepath.Join(f.destDir, supplier, "once.csv")
		writeFile(t, dest, data)
		before, err := os.Stat(dest)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // a rewrite would change the modification time
		f.run()
		f.waitState(tr.ID, ledger.Delivered)
		after, err := os.Stat(dest)
		if err != nil {
			t.Fatal(err)
		}
		if !after.ModTime().Equal(before.ModTime()) {
			t.Error("the verified copy at the destination was written again")
		}
	})
}

// TestRerunWithLandingGone is the re-run of a delivery whose record a
// crash of the machine undid (it is committed relaxed) after its landing
// copy was removed: the transfer is back at received with its bytes gone
// from landing. It is delivered only if the destination holds exactly the
// uploaded bytes; otherwise nothing can bring the file back.
func TestRerunWithLandingGone(t *testing.T) {
	t.Parallel()
	data := []byte("delivered before the crash\n")
	tests := []struct {
		name        string
		destination []byte // nil: none
		want        ledger.State
		wantResult  string
		wantError   string
	}{
		{"the destination holds it", data, ledger.Delivered, "not scanned again: already delivered", ""},
		{"the destination holds other bytes", []byte("an older upload\n"), ledger.Failed, "", "the file is gone"},
		{"nothing at the destination", nil, ledger.Failed, "", "the file is gone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
				f := newFixture(t, dsn, fixtureOptions{})
				tr := f.land("/report.csv", data)
				if err := os.Remove(f.landingFile(tr)); err != nil {
					t.Fatal(err)
				}
				dest := filepath.Join(f.destDir, supplier, "report.csv")
				if tt.destination != nil {
					writeFile(t, dest, tt.destination)
				}
				f.run()
				got := f.waitState(tr.ID, tt.want)
				// The scan result shows in the supplier's receipt: it must
				// not name a store.
				if got.ScanResult != tt.wantResult || !strings.Contains(got.Error, tt.wantError) {
					t.Errorf("transfer settled with scan result %q, error %q", got.ScanResult, got.Error)
				}
				if b, _ := os.ReadFile(dest); string(b) != string(tt.destination) {
					t.Errorf("destination holds %q, want it left as it was (%q)", b, tt.destination)
				}
			})
		})
	}
}

func TestNotificationsRetryWithoutRepeating(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn, fixtureOptions{})
		f.mailer.fail.Store(true)
		f.run()
		tr := f.land("/data.csv", []byte("data\n"))
		f.waitState(tr.ID, ledger.Delivered)
		time.Sleep(100 * time.Millisecond) // a few failed attempts
		f.mailer.fail.Store(false)
		f.waitMails(2)
		time.Sleep(200 * time.Millisecond)
		if n := len(f.mailer.sent()); n != 2 {
			t.Errorf("%d emails, want exactly 2", n)
		}
	})
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	b := backoff{first: time.Second, limit: 5 * time.Second}
	tests := []struct {
		attempt int
		max     time.Duration
	}{
		{1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second}, {4, 5 * time.Second}, {50, 5 * time.Second},
	}
	for _, tt := range tests {
		for range 100 {
			d := b.delay(tt.attempt)
			if d > tt.max || d < tt.max*4/5 {
				t.Fatalf("delay(%d) = %v, want within 20%% below %v", tt.attempt, d, tt.max)
			}
		}
	}
}

func TestObjectLocation(t *testing.T) {
	t.Parallel()
	tests := []struct{ location, key, want string }{
		{"/srv/dest/acme", "2026/a.csv", "/srv/dest/acme/2026/a.csv"},
		{"s3://bucket/acme?region=eu-west-2", "a.csv", "s3://bucket/acme/a.csv?region=eu-west-2"},
		{"s3://bucket/", "a.csv", "s3://bucket/a.csv"},
	}
	for _, tt := range tests {
		if got := objectLocation(tt.location, tt.key); got != tt.want {
			t.Errorf("objectLocation(%q, %q) = %q, want %q", tt.location, tt.key, got, tt.want)
		}
	}
}

func TestReconcileQueuesStuckTransfers(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn, fixtureOptions{})
		// A transfer received long ago whose job the queue lost (River
		// discards a job rescued after its last attempt).
		lost := f.land("/lost.csv", []byte("lost\n"))
		db := f.ledger.DB()
		if _, err := db.ExecContext(t.Context(), `DELETE FROM river_job`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(t.Context(), `UPDATE transfers SET updated_at = '2020-01-01T00:00:00.000000Z' WHERE id = $1`, lost.ID); err != nil {
			t.Fatal(err)
		}
		// One that has its job, and one received just now: left alone.
		fresh := f.land("/fresh.csv", []byte("fresh\n"))
		f.run() // the reconciler runs at start
		f.waitState(lost.ID, ledger.Delivered)
		f.waitState(fresh.ID, ledger.Delivered)
		if kinds := f.eventKinds(""); !slices.Contains(kinds, "pipeline.reconcile") {
			t.Errorf("no pipeline.reconcile event in %v", kinds)
		}
		if n := len(f.files(filepath.Join(f.destDir, supplier))); n != 2 {
			t.Errorf("%d files delivered, want 2", n)
		}
	})
}
