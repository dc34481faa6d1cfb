package integration

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
)

// rescueAfter is the smallest pipeline.rescue_after there is.
const rescueAfter = time.Minute

// TestTakeoverFromDeadNode: two nodes on one Postgres, one S3 landing and
// one destination. Node A takes an upload and hangs scanning it (its clamd
// never answers); a later upload of the same path through node B waits
// behind it, as it must. A is killed with SIGKILL and never restarted: B
// takes the job over after rescue_after, and both files are delivered
// exactly once, in order.
func TestTakeoverFromDeadNode(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	// One worker: A hangs on the first job and takes no other.
	a := takeoverNode(t, c, "node-a", stalledScanner(t), "  workers: 1\n")
	b := takeoverNode(t, c, "node-b", "", "")
	key, dest := c.key, c.dest

	a.start()
	older := uploadVersion(t, a, key, "old version\n")
	eventually(t, 30*time.Second, "node A to start scanning the first upload", func() bool {
		return a.transfer(older).State == ledger.Scanning
	})
	b.start()
	newer := uploadVersion(t, b, key, "new version\n")
	eventually(t, 30*time.Second, "node B to scan the second upload", func() bool {
		return b.transfer(newer).State == ledger.Delivering
	})
	time.Sleep(2 * time.Second)
	if got := b.transfer(newer).State; got != ledger.Delivering {
		t.Fatalf("the later upload went on to %s while the earlier one was on its way", got)
	}

	a.kill()
	killed := time.Now()
	eventually(t, rescueAfter+45*time.Second, "node B to deliver both uploads", func() bool {
		return b.transfer(older).State == ledger.Delivered && b.transfer(newer).State == ledger.Delivered
	})
	took := time.Since(killed)
	t.Logf("both files delivered %s after node A was killed (rescue_after %s)", took.Round(time.Second), rescueAfter)
	// A's last heartbeat came at most a tenth of rescue_after before it died.
	if took < rescueAfter*8/10 {
		t.Errorf("node A's job was taken over %s after it died, before rescue_after (%s)", took, rescueAfter)
	}

	if b, err := os.ReadFile(filepath.Join(dest, "report.csv")); err != nil || string(b) != "new version\n" {
		t.Errorf("destination holds %q, %v; want the later upload", b, err)
	}
	if got := objects(t, dest); len(got) != 1 {
		t.Errorf("destination holds %v, want report.csv alone", got)
	}
	if files := objects(t, filepath.Join(c.s3.Root, "landing")); len(files) != 0 {
		t.Errorf("landing still holds %v", files)
	}
	for _, id := range []string{older, newer} {
		if n := b.countEvents(id, "transfer.delivered"); n != 1 {
			t.Errorf("transfer %s has %d transfer.delivered events, want 1", id, n)
		}
	}
	if _, ok := b.findEvent(0, "pipeline.takeover", map[string]string{"node": "node-a"}); !ok {
		t.Error("no pipeline.takeover event names node-a")
	}
	b.auditVerifies(t)
}

// TestTakeoverOfHungDelivery: node A's delivery hangs on an S3 destination
// that accepts connections and never answers; A is killed with SIGKILL and
// never restarted, and the destination comes back. Node B, started after
// the kill, takes the job over after rescue_after and delivers the file
// once, whole.
func TestTakeoverOfHungDelivery(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	s3 := startVersity(t, "dest")
	front := startHoldingProxy(t, s3.Addr)
	d := s3.destVia(front.addr, "dest", "acme")
	c.dest = d.url // same credentials as the cluster's versitygw
	a := takeoverNode(t, c, "node-a", "", "  workers: 1\n")
	b := takeoverNode(t, c, "node-b", "", "")
	src, sum := randomFile(t, 3<<20)

	a.start()
	a.put(t, "acme", c.key, map[string]string{"/big.bin": src})
	tr, ok := transferAt(a.transfers(), "acme", "/big.bin")
	if !ok {
		t.Fatal("the upload is not in the ledger")
	}
	eventually(t, 30*time.Second, "node A to start delivering", func() bool {
		return a.transfer(tr.ID).State == ledger.Delivering && front.held() > 0
	})
	a.kill()
	killed := time.Now()
	front.release()
	b.start()
	eventually(t, rescueAfter+45*time.Second, "node B to deliver the file", func() bool {
		return b.transfer(tr.ID).State == ledger.Delivered
	})
	t.Logf("delivered %s after node A was killed", time.Since(killed).Round(time.Second))
	if got := objects(t, d.dir); len(got) != 1 || got["big.bin"] != sum {
		t.Errorf("destination holds %v, want big.bin with sha256 %s", got, sum)
	}
	if n := b.countEvents(tr.ID, "transfer.delivered"); n != 1 {
		t.Errorf("%d transfer.delivered events, want 1", n)
	}
	if _, ok := b.findEvent(0, "pipeline.takeover", map[string]string{"node": "node-a"}); !ok {
		t.Error("no pipeline.takeover event names node-a")
	}
	b.auditVerifies(t)
}

// holdingProxy passes TCP connections on to a server, except while it
// holds: then it takes what is sent and answers nothing, like a server that
// hangs. It holds from the start.
type holdingProxy struct {
	addr string
	mu   sync.Mutex
	hold bool
	n    int // connections held
}

func startHoldingProxy(t *testing.T, target string) *holdingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdingProxy{addr: ln.Addr().String(), hold: true}
	serveConns(t, ln, func(conn net.Conn) { p.serve(conn, target) })
	return p
}

func (p *holdingProxy) serve(conn net.Conn, target string) {
	p.mu.Lock()
	hold := p.hold
	if hold {
		p.n++
	}
	p.mu.Unlock()
	if hold {
		_, _ = io.Copy(io.Discard, conn)
		return
	}
	up, err := net.Dial("tcp", target)
	if err != nil {
		conn.Close()
		return
	}
	go func() {
		_, _ = io.Copy(up, conn)
		up.Close()
	}()
	_, _ = io.Copy(conn, up)
	conn.Close()
}

// held counts the connections held so far.
func (p *holdingProxy) held() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// release passes new connections on from now.
func (p *holdingProxy) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hold = false
}

// TestSlowJobOfLiveNodeIsKept: a job that runs longer than rescue_after on
// a node that is alive, as a 5 GB delivery may, is not started again
// elsewhere; when it ends, its file is delivered once.
func TestSlowJobOfLiveNodeIsKept(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	clamd, release := gatedClamd(t)
	a := takeoverNode(t, c, "node-a", clamd, "  workers: 1\n")
	b := takeoverNode(t, c, "node-b", "", "")

	a.start()
	id := uploadVersion(t, a, c.key, "slow report\n")
	eventually(t, 30*time.Second, "node A to start scanning the upload", func() bool {
		return a.transfer(id).State == ledger.Scanning
	})
	b.start()
	// Past rescue_after and the heartbeat that would follow it.
	time.Sleep(rescueAfter + 20*time.Second)
	if tr := b.transfer(id); tr.State != ledger.Scanning || tr.Attempts != 1 {
		t.Fatalf("the slow job of live node A: transfer %s after %d attempts, want scanning after 1", tr.State, tr.Attempts)
	}
	if ev, ok := b.findEvent(0, "pipeline.takeover", nil); ok {
		t.Fatalf("a job of live node A was taken over: %+v", ev)
	}

	release()
	eventually(t, 30*time.Second, "node A to deliver the upload", func() bool {
		return b.transfer(id).State == ledger.Delivered
	})
	if n := b.countEvents(id, "transfer.delivered"); n != 1 {
		t.Errorf("%d transfer.delivered events, want 1", n)
	}
	if got := objects(t, c.dest); len(got) != 1 {
		t.Errorf("destination holds %v, want report.csv alone", got)
	}
	b.auditVerifies(t)
}

// takeoverNode configures (without starting) a node of c with
// rescue_after 1m; clamd "" is the builtin scanner, workers a YAML line of
// the pipeline section or "".
func takeoverNode(t *testing.T, c *cluster, name, clamd, workers string) *gateway {
	return c.node(t, name, gatewayOpts{clamd: clamd, pipeline: "  rescue_after: 1m\n" + workers})
}

// gatedClamd listens on a unix socket like clamd: it answers PING and
// VERSION at once and finds every stream clean, but holds each verdict
// until release is called (or the test ends).
func gatedClamd(t *testing.T) (addr string, release func()) {
	t.Helper()
	addr, ln := clamdSocket(t)
	gate := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	serveConns(t, ln, func(conn net.Conn) { serveGated(conn, gate) })
	t.Cleanup(release) // before serveConns closes the connections
	return addr, release
}

func serveGated(conn net.Conn, gate <-chan struct{}) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	cmd, err := r.ReadString(0)
	if err != nil {
		return
	}
	switch cmd {
	case "zPING\x00":
		_, _ = io.WriteString(conn, "PONG\x00")
	case "zVERSION\x00":
		_, _ = io.WriteString(conn, "ClamAV 1.4.3/27850/Mon Dec  7 00:00:00 2026\x00")
	case "zINSTREAM\x00":
		for {
			var n uint32
			if err := binary.Read(r, binary.BigEndian, &n); err != nil {
				return
			}
			if n == 0 {
				break
			}
			if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
				return
			}
		}
		<-gate
		_, _ = io.WriteString(conn, "stream: OK\x00")
	}
}

// uploadVersion uploads content to /report.csv through g and returns the
// id of its transfer, the newest at that path.
func uploadVersion(t *testing.T, g *gateway, key clientKey, content string) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "report.csv")
	writeFile(t, src, content)
	g.put(t, "acme", key, map[string]string{"/report.csv": src})
	var ids []string
	for _, tr := range g.transfers() {
		if tr.Path == "/report.csv" {
			ids = append(ids, tr.ID)
		}
	}
	if len(ids) == 0 {
		t.Fatal("the upload is not in the ledger")
	}
	return slices.Max(ids) // ids sort by creation time
}

// transfer reads transfer id from the ledger.
func (g *gateway) transfer(id string) ledger.Transfer {
	g.t.Helper()
	l := g.openLedger(g.t)
	defer l.Close()
	tr, err := l.Get(g.t.Context(), id)
	if err != nil {
		g.t.Fatal(err)
	}
	return tr
}

// countEvents counts the audit events of transfer id of kind.
func (g *gateway) countEvents(id, kind string) int {
	g.t.Helper()
	l := g.openLedger(g.t)
	defer l.Close()
	evs, err := l.Events(g.t.Context(), id, 0)
	if err != nil {
		g.t.Fatal(err)
	}
	n := 0
	for _, ev := range evs {
		if ev.Kind == kind {
			n++
		}
	}
	return n
}
