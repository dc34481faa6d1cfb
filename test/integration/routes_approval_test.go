package integration

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
)

// TestRouteBatchApproval: a flag route with approval: 1 holds its batch
// until an operator approves it whole with the CLI; approvals list shows
// it as one line, and a member alone cannot be approved.
func TestRouteBatchApproval(t *testing.T) {
	t.Parallel()
	s3srv := startVersity(t, "src")
	g := newGateway(t, gatewayOpts{env: s3srv.Env(), extra: "watch:\n  every: 300ms\n"})
	writeFile(t, filepath.Join(g.dir, "suppliers", ".keep"), "")
	dest := filepath.Join(t.TempDir(), "dest")
	flagRoute(t, g, s3srv, "held", dest, "approval: 1\n")
	g.start()
	want := putBatch(t, s3srv, 20)
	bs := g.waitBatches(t, 1, nil)
	eventually(t, time.Minute, "the batch's 20 files to await approval", func() bool {
		held := 0
		for _, tr := range g.egressRows(t, "held") {
			if tr.State == ledger.AwaitingApproval {
				held++
			}
		}
		return held == 20
	})
	time.Sleep(time.Second) // several polls and job runs: still nothing sent
	if got := objects(t, dest); len(got) != 0 {
		t.Fatalf("sent before approval: %v", got)
	}
	out, errOut, err := g.airlock("approvals", "list")
	if err != nil || !strings.Contains(out, bs[0].ID) || !strings.Contains(out, "batch of 20 files") {
		t.Errorf("approvals list: %v; want one line for the batch\n%s%s", err, out, errOut)
	}
	member := g.egressRows(t, "held")[0]
	if _, errOut, err := g.airlock("approvals", "approve", member.ID); err == nil || !strings.Contains(errOut, "--batch "+bs[0].ID) {
		t.Errorf("a member's approval: %v; want it refused, naming the batch\n%s", err, errOut)
	}
	if out, errOut, err := g.airlock("approvals", "approve", "--batch", bs[0].ID); err != nil || !strings.Contains(out, "20 files: approved (1 approvals): it will be sent") {
		t.Fatalf("approve --batch: %v\n%s%s", err, out, errOut)
	}
	bs = g.waitBatches(t, 1, func(b ledger.Batch) bool { return b.State == ledger.BatchDelivered })
	assertBatchAt(t, dest, want, bs[0])
	granted := 0
	for _, ev := range g.eventsOf(member.ID) {
		if ev.Kind == "approval.granted" && ev.Detail["batch"] == bs[0].ID && strings.HasPrefix(ev.Actor, "operator:") {
			granted++
		}
	}
	if granted != 1 {
		t.Errorf("%d approval.granted events naming the batch on a member; want 1", granted)
	}
	g.auditVerifies(t)
}
