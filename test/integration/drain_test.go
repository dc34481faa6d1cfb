package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/ledger/ledgertest"
	"github.com/airlock-gw/airlock/internal/testpeer"
)

// readyzCode is the status of /readyz, 0 when nothing answers.
func (g *gateway) readyzCode() int {
	resp, err := http.Get("http://" + g.httpAddr + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// startUpload runs an OpenSSH put of src to name, throttled to kbits
// Kbit/s (sftp -l), and returns a channel that gets its outcome.
func (g *gateway) startUpload(user string, key clientKey, src, name string, kbits int) <-chan error {
	cmd := g.sftpCommand(user, key, fmt.Sprintf("put %s %s\n", src, name), "-l", fmt.Sprint(kbits))
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		done <- err
		return done
	}
	go func() {
		if err := cmd.Wait(); err != nil {
			done <- fmt.Errorf("%w: %s", err, out.String())
		}
		close(done)
	}()
	return done
}

// TestDrainOnSIGTERM: at SIGTERM, /readyz answers 503 and new connections
// are refused at once; an upload that takes less than sftp.drain_timeout
// finishes; one still running at the timeout is closed and interrupted,
// and OpenSSH's reput completes it after the restart; airlock exits only
// then.
func TestDrainOnSIGTERM(t *testing.T) {
	t.Parallel()
	const drain = 8 * time.Second
	g, key := startAcme(t, gatewayOpts{drain: drain}, supplierSpec{})
	const shortSize, longSize = 256 << 10, 8 << 20
	short, shortSum := randomFile(t, shortSize)
	long, longSum := randomFile(t, longSize)
	// At 1 Mbit/s the short upload takes about 2 s, the long one a minute.
	shortDone := g.startUpload("acme", key, short, "/short.bin", 1024)
	longDone := g.startUpload("acme", key, long, "/long.bin", 1024)
	g.waitRows(t, 20*time.Second, "both uploads under way", func(trs []ledger.Transfer) bool {
		s, ok1 := transferAt(trs, "acme", "/short.bin")
		l, ok2 := transferAt(trs, "acme", "/long.bin")
		return ok1 && ok2 && s.State == ledger.Receiving && l.State == ledger.Receiving
	})

	if err := g.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sigterm := time.Now()
	exited := g.proc.Exited()
	eventually(t, 5*time.Second, "/readyz to answer 503", func() bool { return g.readyzCode() == http.StatusServiceUnavailable })
	unready := time.Since(sigterm)
	if c, err := net.DialTimeout("tcp", g.sftpAddr, 5*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Errorf("a new connection during the drain: %v, want it refused", err)
	}
	if out, err := g.sftpBatch("acme", key, "ls\n"); err == nil || !strings.Contains(out, "Connection refused") {
		t.Errorf("OpenSSH during the drain: %v, want connection refused:\n%s", err, out)
	}

	select {
	case err := <-shortDone:
		if err != nil {
			t.Fatalf("the upload under way at SIGTERM failed: %v\n%s", err, g.logTail(30))
		}
	case <-time.After(drain):
		t.Fatalf("the short upload did not finish within the drain\n%s", g.logTail(30))
	}
	if code := g.readyzCode(); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz answers %d while the long upload drains", code)
	}
	select {
	case <-exited:
	case <-time.After(drain + 20*time.Second):
		t.Fatalf("airlock still running %s after SIGTERM", time.Since(sigterm))
	}
	stopped := time.Since(sigterm)
	g.proc = nil
	if stopped < drain {
		t.Errorf("airlock exited %s after SIGTERM, before the drain timeout (%s) with an upload under way", stopped, drain)
	}
	if err := <-longDone; err == nil {
		t.Error("the upload cut at the drain timeout succeeded")
	}
	for _, want := range []string{`"sessions_left":2`, `"msg":"drain timeout: closing the sessions left","draining":true,"sessions_left":1,"closed":1`} {
		if !strings.Contains(g.log.String(), want) {
			t.Errorf("the log lacks %s:\n%s", want, g.logTail(30))
		}
	}
	t.Logf("SIGTERM: /readyz 503 after %s, airlock exited after %s (drain_timeout %s)", unready.Round(time.Millisecond), stopped.Round(time.Millisecond), drain)

	g.start()
	assertArrived(t, g, "acme", "/short.bin", shortSum, shortSize)
	cut, _ := transferAt(g.transfers(), "acme", "/long.bin")
	if cut.State != ledger.Interrupted || cut.Size == 0 || cut.Size >= longSize || !strings.Contains(cut.Error, "drain_timeout") {
		t.Fatalf("the upload cut by the drain: %s at %d bytes (%q), want interrupted, part kept", cut.State, cut.Size, cut.Error)
	}
	if out, err := g.sftpBatch("acme", key, fmt.Sprintf("reput %s /long.bin\n", long)); err != nil {
		t.Fatalf("reput after the restart: %v\n%s", err, out)
	}
	if tr := assertArrived(t, g, "acme", "/long.bin", longSum, longSize); tr.ID != cut.ID {
		t.Errorf("reput delivered transfer %s, not the interrupted %s", tr.ID, cut.ID)
	}
	if ev, ok := g.findEvent(0, "sftp.drain", nil); !ok || ev.Detail["sessions"] != "2" || ev.Detail["closed"] != "1" {
		t.Errorf("sftp.drain audit event %+v, want 2 sessions, 1 closed", ev)
	}
	g.auditVerifies(t)
}

// TestRollingRestart: three nodes on one Postgres and one S3 landing
// behind HAProxy, each restarted in turn (SIGTERM, exit, start) while a
// client uploads 200 files one after another, each SIGTERM landing on a
// node with an upload under way. The client retries a file whose upload
// failed, but none does once its session has begun: no upload is cut, so
// each file has exactly one transfer, delivered once with the right
// sha256.
func TestRollingRestart(t *testing.T) {
	t.Parallel()
	const files = 200
	testpeer.Require(t, "sftp")
	c := newCluster(t)
	key := c.key
	var nodes []*gateway
	var servers []haproxyServer
	for i := range 3 {
		g := c.node(t, fmt.Sprintf("n%d", i+1), gatewayOpts{
			drain: 10 * time.Second, sftpExtra: "  proxy_protocol:\n    trusted: [\"127.0.0.1/32\"]\n",
		})
		g.start() // one after another: the first creates the tables
		nodes = append(nodes, g)
		servers = append(servers, haproxyServer{sftp: g.sftpAddr, http: g.httpAddr})
	}
	h := startHAProxyOver(t, servers)
	srcs, sums := uploadSet(t, files)

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Second)
	defer cancel()
	var uploaded atomic.Int64
	type result struct {
		retries []string
		err     error
	}
	client := make(chan result, 1)
	start := time.Now()
	go func() {
		var r result
		for i := range files {
			for attempt := 1; ; attempt++ {
				out, err := sftpCommandTo(t, h.v2, "acme", key, fmt.Sprintf("put %s /f%03d.bin\n", srcs[i], i)).CombinedOutput()
				if err == nil {
					break
				}
				r.retries = append(r.retries, fmt.Sprintf("f%03d attempt %d: %v: %s", i, attempt, err, strings.TrimSpace(string(out))))
				if ctx.Err() != nil || attempt == 20 {
					r.err = fmt.Errorf("f%03d: gave up after %d attempts", i, attempt)
					client <- r
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
			uploaded.Add(1)
		}
		client <- r
	}()

	for k, g := range nodes {
		for uploaded.Load() < int64(20+55*k) && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
		// A file open on the node: the SIGTERM lands during an upload.
		caught := false
		for deadline := time.Now().Add(10 * time.Second); !caught && time.Now().Before(deadline); {
			caught = g.metric("airlock_sftp_open_handles") > 0
		}
		sigterm := time.Now()
		if err := g.proc.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-g.proc.Exited():
		case <-time.After(30 * time.Second):
			t.Fatalf("node %d still running 30s after SIGTERM\n%s", k+1, g.logTail(30))
		}
		stopped := time.Since(sigterm)
		g.proc = nil
		g.start()
		t.Logf("node n%d: SIGTERM during an upload: %v; exited after %s; serving again after %s; %d files uploaded",
			k+1, caught, stopped.Round(time.Millisecond), time.Since(sigterm).Round(time.Millisecond), uploaded.Load())
	}
	r := <-client
	t.Logf("%d files uploaded in %s, %d attempts retried", uploaded.Load(), time.Since(start).Round(time.Second), len(r.retries))
	for _, line := range r.retries {
		t.Log("  retried: " + line)
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	// sftp -b echoes a command as it runs it: the session had begun.
	for _, line := range r.retries {
		if strings.Contains(line, "sftp> put") {
			t.Errorf("an upload failed after its session began: %s", line)
		}
	}

	g := nodes[0]
	trs := g.waitRows(t, 60*time.Second, "every file to settle", func(trs []ledger.Transfer) bool {
		for _, tr := range trs {
			if !g.rests(tr) && tr.State != ledger.Interrupted {
				return false
			}
		}
		return len(trs) >= files
	})
	byPath := map[string][]ledger.Transfer{}
	byNode := map[string]int{}
	for _, tr := range trs {
		byPath[tr.Path] = append(byPath[tr.Path], tr)
		byNode[tr.Node]++
	}
	for i := range files {
		p := fmt.Sprintf("/f%03d.bin", i)
		rows := byPath[p]
		if len(rows) != 1 || rows[0].State != ledger.Delivered || rows[0].SHA256 != sums[i] {
			t.Errorf("%s: %d transfers, want one delivered with sha256 %.12s:\n%s", p, len(rows), sums[i], g.diagnosis(rows))
		}
	}
	if len(byPath) != files {
		t.Errorf("%d paths in the ledger, want %d", len(byPath), files)
	}
	delivered := objects(t, c.dest)
	if len(delivered) != files {
		t.Errorf("%d files delivered, want %d", len(delivered), files)
	}
	for i := range files {
		if got := delivered[fmt.Sprintf("f%03d.bin", i)]; got != sums[i] {
			t.Errorf("f%03d.bin delivered with sha256 %q, want %s", i, got, sums[i])
		}
	}
	if len(byNode) != 3 {
		t.Errorf("uploads received by node: %v, want all three", byNode)
	}
	t.Logf("received by node: %v", byNode)
	g.auditVerifies(t)
}

// TestDrainHandsBackJobs: node B stops while its job is stuck on a
// scanner that never answers; after sftp.drain_timeout B hands the job
// back, and node A delivers the file at once, although the retry backoff
// and rescue_after are an hour.
func TestDrainHandsBackJobs(t *testing.T) {
	t.Parallel()
	const drain = 2 * time.Second
	c := newCluster(t)
	b := c.node(t, "b", gatewayOpts{drain: drain, stallScans: true})
	b.start()
	src, sum := randomFile(t, 64<<10)
	b.put(t, "acme", c.key, map[string]string{"/stuck.bin": src})
	b.waitTransfer(t, "acme", "/stuck.bin", 20*time.Second, "node b to scan", func(tr ledger.Transfer) bool { return tr.State == ledger.Scanning })
	a := c.node(t, "a", gatewayOpts{pipeline: "  retry_backoff: 1h\n  max_backoff: 1h\n  rescue_after: 1h\n"})
	a.start()

	if err := b.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	sigterm := time.Now()
	select {
	case <-b.proc.Exited():
	case <-time.After(drain + 20*time.Second):
		t.Fatalf("node b still running %s after SIGTERM\n%s", time.Since(sigterm), b.logTail(20))
	}
	b.proc = nil
	stopped := time.Since(sigterm)
	tr := assertArrived(t, a, "acme", "/stuck.bin", sum, 64<<10)
	t.Logf("node b exited %s after SIGTERM; node a delivered the file %s after it", stopped.Round(time.Millisecond), time.Since(sigterm).Round(time.Millisecond))
	if !strings.Contains(b.log.String(), "handing them back") {
		t.Errorf("node b did not log the hand-back:\n%s", b.logTail(20))
	}
	for _, ev := range a.eventsOf(tr.ID) {
		if ev.Kind == "transfer.retry" {
			t.Errorf("the stop was recorded as a failed attempt: %+v", ev)
		}
	}
	a.auditVerifies(t)
}

// cluster is what the nodes of a test cluster share: a Postgres database,
// a versitygw holding landing and quarantine, the destination directory,
// and the key of their supplier, acme.
type cluster struct {
	db   string
	s3   *s3Server
	dest string
	key  clientKey
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	return &cluster{db: ledgertest.Postgres(t), s3: startVersity(t, "landing", "quarantine"), dest: t.TempDir(), key: newClientKey(t)}
}

// node makes (without starting) a gateway of the cluster named name,
// configured by o besides: its suppliers (by default acme with the
// cluster's key) deliver to the cluster's destination.
func (c *cluster) node(t *testing.T, name string, o gatewayOpts) *gateway {
	t.Helper()
	o.database, o.env = c.db, c.s3.Env()
	o.landing, o.landingDir, o.quarantine = c.s3.url("landing"), filepath.Join(c.s3.Root, "landing"), c.s3.url("quarantine")
	o.extra += fmt.Sprintf("node: %s\n", name)
	if o.suppliers == nil {
		o.suppliers = []supplierSpec{{name: "acme", keys: []clientKey{c.key}}}
	}
	for i := range o.suppliers {
		o.suppliers[i].dest = destination{url: c.dest, dir: c.dest}
	}
	return newGateway(t, o)
}

// uploadSet writes n files of 64 KiB to 1 MiB of random bytes and returns
// their paths and sha256 sums.
func uploadSet(t *testing.T, n int) ([]string, []string) {
	t.Helper()
	dir := t.TempDir()
	paths, sums := make([]string, n), make([]string, n)
	for i := range n {
		paths[i] = filepath.Join(dir, fmt.Sprintf("f%03d.bin", i))
		f, err := os.Create(paths[i])
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		size := int64(64<<10) * int64(1+i*7%16)
		if _, err := io.CopyN(io.MultiWriter(f, h), rand.NewChaCha8([32]byte{byte(i), byte(i >> 8), 'r'}), size); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		sums[i] = hex.EncodeToString(h.Sum(nil))
	}
	return paths, sums
}
