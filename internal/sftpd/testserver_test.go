package sftpd

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/ssh"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/sftptest"
	"github.com/airlock-gw/airlock/internal/storage"
)

// The suppliers every test server knows.
const (
	uploader = "acme"    // upload only, allowed from loopback
	egresser = "globex"  // upload and download, allowed from loopback
	outsider = "initech" // allowed only from 192.0.2.0/24
)

// egressFiles are the objects of globex's egress store.
var egressFiles = map[string]string{
	"report.csv":       "id,value\n1,42\n",
	"sub/inner.csv":    "inner\n",
	"bad name.csv":     "never listed\n",
	"2026/01/deep.txt": "deep\n",
}

type serverOptions struct {
	maxFileSize   int64 // default 1 MiB
	uploadMemory  int64 // default: the server's default budget
	reorderWindow int
	reorderStall  time.Duration
	// receiptRetention turns receipts on; handoff is Options.Handoff.
	receiptRetention time.Duration
	resumeWindow     time.Duration // 0: resume off
	drainTimeout     time.Duration // 0: a stop closes the sessions at once
	handoff          func(ctx context.Context, tx *sql.Tx, tr ledger.Transfer) error
	recordAfter      time.Duration // default: the server's
	overwrite        string        // every supplier's overwrite policy; default: config's
	ban              config.Ban    // sftp.ban; default: off

	// Resource limits, 0 for the defaults.
	maxHandlesPerSession, maxHandlesPerSupplier, maxHandlesPerNode int
	maxChannels                                                    int
	writeStall                                                     time.Duration
	// listener, when set, wraps the server's listener.
	listener func(net.Listener) net.Listener
}

// testServer is a real Server on a loopback port with a temporary SQLite
// ledger, a temporary landing directory and three suppliers.
type testServer struct {
	srv        *Server
	addr       string
	root       string // everything the server owns lives below
	landingDir string
	egressDir  string
	ledger     *ledger.Ledger
	metrics    *Metrics
	hostKey    ssh.PublicKey
	keys       map[string]ssh.Signer // each supplier's client key

	cancel   context.CancelFunc
	done     chan error
	stopOnce sync.Once
}

func newTestServer(t testing.TB, opts serverOptions) *testServer {
	t.Helper()
	ctx := context.Background()
	root := t.TempDir()
	ts := &testServer{
		root:       root,
		landingDir: filepath.Join(root, "landing"),
		egressDir:  filepath.Join(root, "egress"),
		keys:       map[string]ssh.Signer{},
	}
	for name, content := range egressFiles {
		writeFile(t, filepath.Join(ts.egressDir, filepath.FromSlash(name)), content)
	}

	suppliersDir := filepath.Join(root, "suppliers")
	for _, s := range []struct {
		name, ips string
		egress    bool
	}{
		{uploader, `["127.0.0.0/8", "::1"]`, false},
		{egresser, `["127.0.0.0/8", "::1"]`, true},
		{outsider, `["192.0.2.0/24"]`, false},
	} {
		signer := newClientKey(t)
		ts.keys[s.name] = signer
		authorized := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
		yaml := fmt.Sprintf("name: %s\nemail: data@%s.example\nallowed_ips: %s\nssh_keys: [%q]\ndestination:\n  url: %q\n",
			s.name, s.name, s.ips, authorized+" "+s.name+" test key", filepath.Join(root, "dest", s.name))
		if s.egress {
			yaml += fmt.Sprintf("egress:\n  url: %q\n", ts.egressDir)
		}
		if opts.overwrite != "" {
			yaml += "overwrite: " + opts.overwrite + "\n"
		}
		writeFile(t, filepath.Join(suppliersDir, s.name+".yaml"), yaml)
	}
	suppliers, err := config.LoadSuppliers(suppliersDir, root)
	if err != nil {
		t.Fatalf("load suppliers: %v", err)
	}

	maxFileSize := opts.maxFileSize
	if maxFileSize == 0 {
		maxFileSize = 1 << 20
	}
	cfg := &config.Config{
		Node: "test",
		SFTP: config.SFTP{
			HostKeys:         []string{filepath.Join(root, "hostkeys", "ssh_host_ed25519_key")},
			TempPatterns:     []string{"*.filepart"},
			ReceiptRetention: opts.receiptRetention,
			ResumeWindow:     opts.resumeWindow,
			DrainTimeout:     opts.drainTimeout,
			Ban:              opts.ban,

			MaxHandlesPerSession: opts.maxHandlesPerSession, MaxHandlesPerSupplier: opts.maxHandlesPerSupplier,
			MaxHandlesPerNode: opts.maxHandlesPerNode, MaxChannelsPerConnection: opts.maxChannels,
			WriteStallTimeout: opts.writeStall,
		},
		Limits: config.Limits{MaxFileSize: config.Size(maxFileSize), UploadMemory: config.Size(opts.uploadMemory)},
	}

	ts.ledger, err = ledger.Open(ctx, "sqlite:"+filepath.Join(root, "airlock.db"))
	if err != nil {
		t.Fatalf("open ledger: %v", err)
	}
	landing, err := storage.Open(ctx, ts.landingDir)
	if err != nil {
		t.Fatalf("open landing: %v", err)
	}
	ts.metrics = NewMetrics(prometheus.NewRegistry())
	ts.srv, err = New(Options{
		Config:        cfg,
		Suppliers:     func() *config.Suppliers { return suppliers },
		Ledger:        ts.ledger,
		Landing:       landing,
		Logger:        testLogger(t),
		Metrics:       ts.metrics,
		ReorderWindow: opts.reorderWindow,
		ReorderStall:  opts.reorderStall,
		Handoff:       opts.handoff,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts.srv.recordAfter = cmp.Or(opts.recordAfter, ts.srv.recordAfter)
	signers, err := LoadHostKeys(cfg.SFTP.HostKeys)
	if err != nil {
		t.Fatalf("host key: %v", err)
	}
	ts.hostKey = signers[0].PublicKey()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = ln.Addr().String()
	if opts.listener != nil {
		ln = opts.listener(ln)
	}
	serveCtx, cancel := context.WithCancel(ctx)
	ts.cancel = cancel
	ts.done = make(chan error, 1)
	go func() { ts.done <- ts.srv.Serve(serveCtx, ln) }()
	t.Cleanup(func() {
		ts.stop(t)
		ts.ledger.Close()
		landing.Close()
	})
	return ts
}

// stop ends Serve and waits for it; calling it again is harmless.
func (ts *testServer) stop(t testing.TB) {
	t.Helper()
	ts.stopOnce.Do(func() {
		ts.cancel()
		select {
		case err := <-ts.done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Serve did not return after its context ended")
		}
	})
}

// testLogger discards the server's log unless AIRLOCK_TEST_LOG is set.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("AIRLOCK_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newClientKey(t testing.TB) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer
}

func writeFile(t testing.TB, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// dial logs in as user with key, offering only ciphers when any are given.
func (ts *testServer) dial(user string, key ssh.Signer, ciphers ...string) (*ssh.Client, error) {
	conf := &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(key)},
		HostKeyCallback: ssh.FixedHostKey(ts.hostKey),
		Timeout:         10 * time.Second,
	}
	conf.Ciphers = ciphers
	return ssh.Dial("tcp", ts.addr, conf)
}

// connect logs in as user with the user's own key.
func (ts *testServer) connect(t *testing.T, user string) *ssh.Client {
	t.Helper()
	conn, err := ts.dial(user, ts.keys[user])
	if err != nil {
		t.Fatalf("log in as %s: %v", user, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// sftpClient opens an SFTP session as user.
func (ts *testServer) sftpClient(t *testing.T, user string, opts ...sftp.ClientOption) *sftp.Client {
	t.Helper()
	c, err := sftp.NewClient(ts.connect(t, user), opts...)
	if err != nil {
		t.Fatalf("sftp session as %s: %v", user, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// putFile writes data to p and closes it, returning the first error.
func putFile(c *sftp.Client, p string, data []byte) error {
	f, err := c.Create(p)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	return errors.Join(werr, cerr)
}

func (ts *testServer) transfers(t *testing.T, supplier string) []ledger.Transfer {
	t.Helper()
	trs, err := ts.ledger.List(context.Background(), ledger.Filter{Supplier: supplier})
	if err != nil {
		t.Fatal(err)
	}
	return trs
}

// onlyTransfer returns the one transfer of supplier.
func (ts *testServer) onlyTransfer(t *testing.T, supplier string) ledger.Transfer {
	t.Helper()
	trs := ts.transfers(t, supplier)
	if len(trs) != 1 {
		t.Fatalf("%s has %d transfers, want 1: %+v", supplier, len(trs), trs)
	}
	return trs[0]
}

// events returns the audit events of kind (all kinds if "").
func (ts *testServer) events(t *testing.T, kind string) []ledger.Event {
	t.Helper()
	evs, err := ts.ledger.Events(context.Background(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []ledger.Event
	for _, ev := range evs {
		if kind == "" || ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

// refusals counts request.refused events with the given reason.
func (ts *testServer) refusals(t *testing.T, reason string) int {
	t.Helper()
	n := 0
	for _, ev := range ts.events(t, "request.refused") {
		if ev.Detail["reason"] == reason {
			n++
		}
	}
	return n
}

// landed returns the regular files in the landing directory by their
// slash-separated path, staged leftovers included.
func (ts *testServer) landed(t *testing.T) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(ts.landingDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(ts.landingDir, p)
		files[filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return files
}

func (ts *testServer) assertNothingLanded(t *testing.T) {
	t.Helper()
	if files := ts.landed(t); len(files) > 0 {
		names := make([]string, 0, len(files))
		for n := range files {
			names = append(names, n)
		}
		t.Errorf("landing holds %v, want nothing", names)
	}
}

// eventually polls cond until it holds or a deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rawClient opens an SFTP session as user driven packet by packet, to see
// status codes and messages that pkg/sftp's client folds into
// os.ErrPermission, and to send packets it would never build.
func (ts *testServer) rawClient(t *testing.T, user string) *sftptest.Client {
	t.Helper()
	return sftptest.New(t, ts.connect(t, user))
}
