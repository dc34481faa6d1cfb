package integration

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/ledger/ledgertest"
)

// rescueAfter is the smallest pipeline.rescue_after there is.
const rescueAfter = time.Minute

// TestTakeoverFromDeadNode: two nodes on one Postgres, one landing and one
// destination. Node A takes an upload and hangs scanning it (its clamd
// never answers); a later upload of the same path through node B waits
// behind it, as it must. A is killed with SIGKILL and never restarted: B
// takes the job over after rescue_after, and both files are delivered
// exactly once, in order.
func TestTakeoverFromDeadNode(t *testing.T) {
	t.Parallel()
	dsn := ledgertest.Postgres(t)
	shared := t.TempDir()
	key := newClientKey(t)
	dest := filepath.Join(shared, "delivered", "acme")
	spec := supplierSpec{name: "acme", keys: []clientKey{key}, dest: destination{url: dest, dir: dest}}
	node := func(name, clamd, workers string) *gateway {
		return newGateway(t, gatewayOpts{
			database: dsn, landing: filepath.Join(shared, "landing"), clamd: clamd,
			pipeline:  "  rescue_after: 1m\n" + workers,
			extra:     "node: " + name + "\n",
			suppliers: []supplierSpec{spec},
		})
	}
	// One worker: A hangs on the first job and takes no other.
	a := node("node-a", stalledScanner(t), "  workers: 1\n")
	b := node("node-b", "", "")

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
	if files := landedFiles(t, filepath.Join(shared, "landing")); len(files) != 0 {
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
