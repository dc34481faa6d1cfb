package integration

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/airlock-gw/airlock/internal/ledger"
)

// TestQuarantineReleaseApproval: with quarantine_release_approvals: 2, an
// operator's `quarantine release` is a request; the requester's own
// approval is refused, as is a second by one person; the approval of the
// second other person releases the file (here without a rescan, as the
// request asked) and it is delivered. A rejected request releases
// nothing. Every step is audited with who took it; the person is the
// system user, or $AIRLOCK_OPERATOR, which the actor also names.
func TestQuarantineReleaseApproval(t *testing.T) {
	t.Parallel()
	g, key := startAcme(t, gatewayOpts{extra: "quarantine_release_approvals: 2\n"}, supplierSpec{})
	okFile, okSHA := sourceFile(t, "eicar.com", eicar)
	noFile, noSHA := sourceFile(t, "eicar2.com", eicar+"\n")
	g.put(t, "acme", key, map[string]string{"eicar.com": okFile, "eicar2.com": noFile})
	tr := assertQuarantined(t, g, "/eicar.com", okSHA)
	other := assertQuarantined(t, g, "/eicar2.com", noSHA)

	seq := g.lastSeq()
	out, errOut, err := g.airlockAs("rita", "quarantine", "release", tr.ID, "--reason", "test file the project wants", "--skip-rescan")
	if err != nil || !strings.Contains(out, "release requested") {
		t.Fatalf("release request: %v\n%s%s", err, out, errOut)
	}
	ev := g.waitEvent(t, seq, "quarantine.release_requested", tr.ID, map[string]string{"requester": "rita", "reason": "project wants", "skip_rescan": "true"})
	if !strings.HasPrefix(ev.Actor, "operator:rita (system user ") {
		t.Errorf("request actor %q; want the person and the system user", ev.Actor)
	}
	if got := newestAt(t, g, "acme", "/eicar.com"); got.State != ledger.Quarantined {
		t.Fatalf("after the request: %s; want still quarantined", got.State)
	}

	out, errOut, err = g.airlock("approvals", "list", "--json")
	var held []struct {
		ID      string                 `json:"id"`
		Release *ledger.ReleaseRequest `json:"release"`
	}
	if err != nil || json.Unmarshal([]byte(out), &held) != nil || len(held) != 1 || held[0].ID != tr.ID ||
		held[0].Release == nil || held[0].Release.Requester != "rita" {
		t.Fatalf("approvals list --json: %v %s\n%s", err, errOut, out)
	}
	if out, errOut, err := g.airlockAs("rita", "approvals", "approve", tr.ID); err == nil || !strings.Contains(errOut, "requester of a release cannot approve") {
		t.Fatalf("the requester's approval: %v\n%s%s", err, out, errOut)
	}
	if out, errOut, err := g.airlockAs("bob", "approvals", "approve", tr.ID); err != nil || !strings.Contains(out, "1 so far") {
		t.Fatalf("bob's approval: %v\n%s%s", err, out, errOut)
	}
	if out, errOut, err := g.airlockAs("bob", "approvals", "approve", tr.ID); err == nil || !strings.Contains(errOut, "already approved") {
		t.Fatalf("bob's second approval: %v\n%s%s", err, out, errOut)
	}
	if got := newestAt(t, g, "acme", "/eicar.com"); got.State != ledger.Quarantined {
		t.Fatalf("after one approval of two: %s; want still quarantined", got.State)
	}
	if out, errOut, err := g.airlockAs("carl", "approvals", "approve", tr.ID); err != nil || !strings.Contains(out, "released from quarantine") {
		t.Fatalf("carl's approval: %v\n%s%s", err, out, errOut)
	}
	got := assertArrived(t, g, "acme", "/eicar.com", okSHA, int64(len(eicar)))
	if !strings.Contains(got.ScanResult, "without a rescan") {
		t.Errorf("scan result %q; want released without a rescan", got.ScanResult)
	}
	done := g.waitEvent(t, seq, "quarantine.release", tr.ID, map[string]string{"requester": "rita", "approvers": "bob,carl", "skip_rescan": "true"})
	if !strings.HasPrefix(done.Actor, "operator:carl") {
		t.Errorf("release actor %q; want carl, whose approval completed it", done.Actor)
	}
	g.waitEvent(t, seq, "approval.granted", tr.ID, map[string]string{"release": "true", "approvals": "1", "needed": "2"})

	if _, errOut, err := g.airlockAs("rita", "quarantine", "release", other.ID, "--reason", "please"); err != nil {
		t.Fatalf("second request: %v\n%s", err, errOut)
	}
	if out, errOut, err := g.airlockAs("bob", "approvals", "reject", other.ID, "--reason", "it is malware"); err != nil {
		t.Fatalf("reject: %v\n%s%s", err, out, errOut)
	}
	g.waitEvent(t, seq, "quarantine.release_rejected", other.ID, map[string]string{"reason": "malware", "requester": "rita"})
	if out, errOut, err := g.airlockAs("carl", "approvals", "approve", other.ID); err == nil || !strings.Contains(errOut, "no release is requested") {
		t.Errorf("approval of a rejected request: %v\n%s%s", err, out, errOut)
	}
	if got := newestAt(t, g, "acme", "/eicar2.com"); got.State != ledger.Quarantined || got.Destination == "" {
		t.Errorf("after the rejection: %s at %q; want still held in quarantine", got.State, got.Destination)
	}
	if _, err := os.Stat(g.destFile("acme", "/eicar2.com")); !os.IsNotExist(err) {
		t.Errorf("the rejected file reached the destination: %v", err)
	}
	g.auditVerifies(t)
}

// airlockAs runs the CLI as person, named by $AIRLOCK_OPERATOR.
func (g *gateway) airlockAs(person string, args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command(airlockBin, append(args, "--config", g.cfg)...)
	cmd.Env = append(os.Environ(), "AIRLOCK_OPERATOR="+person)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}
