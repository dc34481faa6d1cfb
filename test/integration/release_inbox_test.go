package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/testpeer"
)

// TestReleaseInbox: airlock-release puts a tree into a release inbox on
// versitygw, whose route checks it against the manifest and delivers it to
// the TRE as releases. A release with a file its manifest does not name,
// one whose bytes are not the manifest's, and one with the EICAR file are
// each refused whole: nothing of them is sent, and their batch fails
// naming why.
func TestReleaseInbox(t *testing.T) {
	t.Parallel()
	v := startVersity(t, "inbox")
	g := newGateway(t, gatewayOpts{env: v.Env(), extra: "watch:\n  every: 300ms\n"})
	writeFile(t, filepath.Join(g.dir, "suppliers", ".keep"), "")
	tre := t.TempDir()
	teams := map[string]string{ // inbox → what its refusal names ("" delivered)
		"ok": "", "extra": "stray.csv is not in the manifest", "tampered": "a.csv has sha256", "infected": "eicar.com is infected",
	}
	for team := range teams {
		writeFile(t, filepath.Join(g.dir, "routes", "in-"+team+".yaml"), fmt.Sprintf("name: in-%s\nsource: %q\nrelease: true\ndestination: %q\n",
			team, testpeer.S3URL(v.Addr, "inbox", team+"/"), filepath.Join(tre, team)))
	}
	g.start()

	env, put := releaseEnv(t, v.Versity), toBucket(t, v, "inbox")
	src, want := releaseTree(t, 5, 0)
	// The desktop's binary, not the gateway's.
	small := filepath.Join(t.TempDir(), "airlock-release")
	if out, err := exec.Command("go", "build", "-o", small, "../../cmd/airlock-release").CombinedOutput(); err != nil {
		t.Fatalf("build airlock-release: %v\n%s", err, out)
	}
	cmd := exec.Command(small, src, "--to", testpeer.S3URL(v.Addr, "inbox", "ok"))
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("airlock-release: %v\n%s", err, out)
	}
	put("extra/stray.csv", []byte("never released")) // there before the release
	if _, stderr, err := runRelease(t, env, src, "--to", testpeer.S3URL(v.Addr, "inbox", "extra")); err != nil {
		t.Fatalf("release: %v\n%s", err, stderr)
	}
	infected := t.TempDir()
	writeFile(t, filepath.Join(infected, "eicar.com"), eicar)
	writeFile(t, filepath.Join(infected, "fine.csv"), "id\n1\n")
	if _, stderr, err := runRelease(t, env, infected, "--to", testpeer.S3URL(v.Addr, "inbox", "infected")); err != nil {
		t.Fatalf("release of the EICAR file: %v\n%s", err, stderr)
	}
	// A manifest that does not match what is there, as if the bytes were
	// changed on the way.
	other := sha256.Sum256([]byte("y"))
	put("tampered/a.csv", []byte("x"))
	put("tampered/airlock-manifest.json", fmt.Appendf(nil, `{"release":"r-t","who":"test","files":[{"key":"a.csv","size":1,"sha256":%q}]}`,
		hex.EncodeToString(other[:])))

	bs := g.waitBatches(t, len(teams), func(b ledger.Batch) bool { return b.State != ledger.BatchOpen })
	failures := map[string]string{}
	for _, ev := range g.events() {
		if ev.Kind == "batch.failed" {
			failures[ev.Detail["route"]] = ev.Detail["reason"]
		}
	}
	for _, b := range bs {
		team := strings.TrimPrefix(b.Route, "in-")
		why := teams[team]
		switch {
		case why == "" && b.State != ledger.BatchDelivered:
			t.Errorf("%s: batch %s; want delivered", team, b.State)
		case why != "" && (b.State != ledger.BatchFailed || !strings.Contains(failures[b.Route], why)):
			t.Errorf("%s: batch %s, %q; want failed naming %q", team, b.State, failures[b.Route], why)
		case why != "":
			if got := objects(t, filepath.Join(tre, team)); len(got) != 0 {
				t.Errorf("%s: the refused release sent %v", team, got)
			}
		default:
			assertReleased(t, g, filepath.Join(tre, team), want, b)
		}
	}
	g.auditVerifies(t)
}

// assertReleased checks that dir holds the released files with their
// sha256 and the batch's manifest, and that the ledger has them as
// releases.
func assertReleased(t *testing.T, g *gateway, dir string, want map[string]string, b ledger.Batch) {
	t.Helper()
	got := objects(t, dir)
	for rel, sum := range want {
		if got[rel] != sum {
			t.Errorf("%s: %q in the TRE; want sha256 %s", rel, got[rel], sum)
		}
	}
	if _, ok := got[b.ID+".manifest.json"]; !ok || len(got) != len(want)+1 {
		t.Errorf("the TRE holds %d objects; want the %d files and the batch's manifest, never the release's", len(got), len(want))
	}
	l := g.openLedger(t)
	defer l.Close()
	trs, err := l.List(t.Context(), ledger.Filter{Direction: ledger.Release, Batch: b.ID})
	if err != nil || len(trs) != len(want) {
		t.Errorf("%d transfers of direction release, %v; want %d", len(trs), err, len(want))
	}
	if _, err := os.Stat(filepath.Join(dir, "airlock-manifest.json")); err == nil {
		t.Error("the release's manifest (the flag) was sent")
	}
}
