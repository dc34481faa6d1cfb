package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/sftptest"
)

// TestOverwritePolicy uploads a name, waits for its delivery and sends it
// again under each overwrite policy: with the OpenSSH client's put
// (WRITE|CREAT|TRUNC), then raw opens with CREAT|EXCL and with TRUNC. It
// checks the destination's bytes, the ledger's rows, the audit events with
// both sha256s and `airlock audit verify`. Then two uploads of one name
// opened together, which both pass the check at open: the delivery decides.
func TestOverwritePolicy(t *testing.T) {
	t.Parallel()
	first := []byte("first upload, 18 b")
	second := []byte("second upload of the same name\n")
	for _, policy := range []string{"allow", "deny", "version"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			key := newClientKey(t)
			g := newGateway(t, gatewayOpts{suppliers: []supplierSpec{{name: "acme", keys: []clientKey{key}}}})
			appendFile(t, filepath.Join(g.dir, "suppliers", "acme.yaml"), "overwrite: "+policy+"\n")
			g.start()

			// The first upload, delivered.
			g.put(t, "acme", key, map[string]string{"report.csv": localFile(t, first)})
			a := assertArrived(t, g, "acme", "/report.csv", sha256Hex(first), int64(len(first)))

			// The second, with the OpenSSH client.
			out, err := g.sftpBatch("acme", key, fmt.Sprintf("put %s report.csv\n", localFile(t, second)))
			dest := g.destFile("acme", "/report.csv")
			var b ledger.Transfer
			if policy == "deny" {
				if err == nil || !strings.Contains(out, "Permission denied") {
					t.Fatalf("put over a delivered name under deny: %v\n%s", err, out)
				}
				if _, ok := g.findEvent(0, "request.refused", map[string]string{"reason": "overwrite-denied", "path": "/report.csv"}); !ok {
					t.Error("the refused open is not audited")
				}
			} else {
				if err != nil {
					t.Fatalf("put over a delivered name: %v\n%s", err, out)
				}
				b = g.waitTransfer(t, "acme", "/report.csv", 20*time.Second, "the second upload's delivery", func(tr ledger.Transfer) bool {
					return tr.ID != a.ID && tr.State == ledger.Delivered
				})
				g.checkOverwriteEvent(t, policy, a, b)
			}
			switch policy {
			case "allow":
				wantFile(t, dest, second)
			case "deny":
				wantFile(t, dest, first)
			case "version":
				wantFile(t, dest, first)
				wantFile(t, g.destFile("acme", "/report."+b.ID+".csv"), second)
			}

			// CREAT|EXCL of the delivered name fails under every policy.
			raw := dialRaw(t, g, "acme", key)
			code, msg := raw.Status(sftptest.FXPOpen, "/report.csv", uint32(sftptest.FXFWrite|sftptest.FXFCreat|sftptest.FXFExcl), uint32(0))
			wantRaw(t, "open CREAT|EXCL of a delivered name", code, msg, sftptest.FXFailure, "already exists")

			// TRUNC is no way around the policy: an empty file in its place.
			code, msg = raw.OpenWrite("/report.csv")
			if policy == "deny" {
				wantRaw(t, "open TRUNC of a delivered name", code, msg, sftptest.FXPermissionDenied, "overwrite policy is deny")
			} else {
				wantRaw(t, "open TRUNC of a delivered name", code, msg, sftptest.FXOK)
				c := g.waitTransfer(t, "acme", "/report.csv", 20*time.Second, "the truncating upload's delivery", func(tr ledger.Transfer) bool {
					return tr.ID != a.ID && tr.ID != b.ID && tr.State == ledger.Delivered
				})
				if policy == "allow" {
					g.checkOverwriteEvent(t, policy, b, c)
				} else {
					g.checkOverwriteEvent(t, policy, a, c) // set beside the file at the name, not b
				}
				if policy == "allow" {
					wantFile(t, dest, nil)
				} else {
					wantFile(t, dest, first)
					wantFile(t, g.destFile("acme", "/report."+c.ID+".csv"), nil)
				}
			}

			wantRows := map[string]int{"allow": 3, "deny": 1, "version": 3}[policy]
			if got := countRows(g.transfers(), "/report.csv", ledger.Delivered); got != wantRows {
				t.Errorf("%d delivered transfers of /report.csv, want %d\n%s", got, wantRows, g.diagnosis(g.transfers()))
			}
			if n := countRows(g.transfers(), "/report.csv", ""); n != wantRows {
				t.Errorf("%d transfers of /report.csv in all, want %d", n, wantRows)
			}

			g.checkRace(t, raw, policy)
			g.auditVerifies(t)
		})
	}
}

// checkRace opens one name twice before either upload is received, as two
// sessions may: both pass the check at open, the first opened (to the
// millisecond) is delivered first, and the later one's delivery follows the
// policy.
func (g *gateway) checkRace(t *testing.T, raw *sftptest.Client, policy string) {
	t.Helper()
	one, two := []byte("race: the first opened\n"), []byte("race: the second opened\n")
	h1 := rawOpen(t, raw, "/race.csv")
	h2 := rawOpen(t, raw, "/race.csv")
	for _, w := range []struct {
		h    string
		data []byte
	}{{h1, one}, {h2, two}} {
		if code, msg := raw.Status(sftptest.FXPWrite, w.h, uint64(0), string(w.data)); code != sftptest.FXOK {
			t.Fatalf("write: status %d %q", code, msg)
		}
		if code, msg := raw.Status(sftptest.FXPClose, w.h); code != sftptest.FXOK {
			t.Fatalf("close: status %d %q", code, msg)
		}
	}
	want := ledger.Delivered
	if policy == "deny" {
		want = ledger.Failed
	}
	rows := g.waitRows(t, time.Minute, "both uploads of /race.csv to settle", func(trs []ledger.Transfer) bool {
		return countRows(trs, "/race.csv", ledger.Delivered)+countRows(trs, "/race.csv", ledger.Failed) == 2
	})
	// The ids order the deliveries of a path: two opens within one
	// millisecond may get them either way round.
	var first, later ledger.Transfer
	for _, tr := range rows {
		switch {
		case tr.Path != "/race.csv":
		case first.ID == "":
			first = tr
		case tr.ID < first.ID:
			first, later = tr, first
		default:
			later = tr
		}
	}
	if first.SHA256 == sha256Hex(two) {
		one, two = two, one
	}
	if first.State != ledger.Delivered || first.SHA256 != sha256Hex(one) || later.State != want || later.SHA256 != sha256Hex(two) {
		t.Fatalf("race: first %s %.12s, later %s %.12s; want delivered, then %s\n%s",
			first.State, first.SHA256, later.State, later.SHA256, want, g.diagnosis(rows))
	}
	dest := g.destFile("acme", "/race.csv")
	switch policy {
	case "allow":
		wantFile(t, dest, two)
		g.checkOverwriteEvent(t, policy, first, later)
	case "deny":
		wantFile(t, dest, one)
		if !strings.Contains(later.Error, "overwrite policy is deny") || !strings.Contains(later.Error, first.ID) {
			t.Errorf("race: the later upload failed with %q", later.Error)
		}
		wantFile(t, g.landedPath(later), two) // kept for an operator
		if _, ok := g.findEvent(0, "transfer.failed", map[string]string{"error": "overwrite policy is deny"}); !ok {
			t.Error("race: the refused delivery is not audited")
		}
	case "version":
		wantFile(t, dest, one)
		wantFile(t, g.destFile("acme", "/race."+later.ID+".csv"), two)
		g.checkOverwriteEvent(t, policy, first, later)
	}
}

// checkOverwriteEvent checks that b's delivery over a's is audited with
// both sha256s, and shows in `airlock transfers show` of b.
func (g *gateway) checkOverwriteEvent(t *testing.T, policy string, a, b ledger.Transfer) {
	t.Helper()
	kind := map[string]string{"allow": "transfer.overwrite", "version": "transfer.version"}[policy]
	ev := g.waitEvent(t, 0, kind, b.ID, map[string]string{
		"earlier_transfer_id": a.ID, "earlier_sha256": a.SHA256, "sha256": b.SHA256, "policy": policy,
	})
	if ev.Detail["destination"] != b.Destination || a.SHA256 == b.SHA256 {
		t.Errorf("%s event %v; transfer destination %q", kind, ev.Detail, b.Destination)
	}
	if policy == "allow" && b.Destination != a.Destination || policy == "version" && !strings.HasSuffix(b.Destination, "."+b.ID+".csv") {
		t.Errorf("destination %q, earlier %q", b.Destination, a.Destination)
	}
	out, errOut, err := g.airlock("transfers", "show", b.ID)
	if err != nil {
		t.Fatalf("transfers show: %v\n%s", err, errOut)
	}
	for _, want := range []string{kind, a.SHA256, b.SHA256, "destination  " + b.Destination} {
		if !strings.Contains(out, want) {
			t.Errorf("transfers show %s does not show %q:\n%s", b.ID, want, out)
		}
	}
}

// rawOpen opens p for writing (WRITE|CREAT|TRUNC) and returns the handle.
func rawOpen(t *testing.T, raw *sftptest.Client, p string) string {
	t.Helper()
	typ, body := raw.Call(sftptest.FXPOpen, p, uint32(sftptest.FXFWrite|sftptest.FXFCreat|sftptest.FXFTrunc), uint32(0))
	if typ != sftptest.FXPHandle {
		code, msg := raw.StatusOf(body)
		t.Fatalf("open %s: status %d %q", p, code, msg)
	}
	h, _ := raw.String(body)
	return h
}

func countRows(trs []ledger.Transfer, p string, state ledger.State) int {
	n := 0
	for _, tr := range trs {
		if tr.Supplier == "acme" && tr.Path == p && (state == "" || tr.State == state) {
			n++
		}
	}
	return n
}

// wantFile checks that p holds data.
func wantFile(t *testing.T, p string, data []byte) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil || string(got) != string(data) {
		t.Errorf("%s holds %q (%v), want %q", p, got, err, data)
	}
}

// localFile writes data to a file of its own and returns its path.
func localFile(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "upload")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func appendFile(t *testing.T, p, s string) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}
