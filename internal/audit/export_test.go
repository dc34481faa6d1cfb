package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
)

func TestOutcome(t *testing.T) {
	t.Parallel()
	for kind, want := range map[string]string{
		"auth.ok": "success", "auth.fail": "failure", "transfer.delivered": "success", "transfer.quarantined": "failure",
		"approval.granted": "success", "approval.refused": "failure", "approval.rejected": "failure",
		"console.signin": "success", "console.signin_refused": "failure", "ip.banned": "failure", "ip.unbanned": "success",
		"quarantine.release": "success", "quarantine.release_requested": "success", "quarantine.release_rejected": "failure",
		"download.partial": "failure", "connect": "unknown",
	} {
		if got := Outcome(kind); got != want {
			t.Errorf("Outcome(%q) = %q, want %q", kind, got, want)
		}
	}
}

func TestToECS(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 8, 1, 2, 3, 456000000, time.UTC)
	tr := &ledger.Transfer{ID: "t1", Direction: ledger.Ingress, Supplier: "acme", Path: "/2026/data.csv", Size: 42,
		SHA256: "ab12", State: ledger.Delivered}
	got, err := json.Marshal(ToECS(ledger.Event{Seq: 7, At: at, Kind: "deliver.ok", Actor: "acme", RemoteIP: "::ffff:192.0.2.1",
		ConnID: "C1", TransferID: "t1", Detail: map[string]string{"to": "s3://x"}, PrevHash: "p", Hash: "h"}, tr))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"@timestamp":"2026-12-08T01:02:03.456Z","ecs":{"version":"8.11.0"},` +
		`"event":{"id":"h","sequence":7,"kind":"event","dataset":"airlock.audit","action":"deliver.ok","outcome":"success"},` +
		`"user":{"name":"acme"},"source":{"ip":"192.0.2.1"},` +
		`"file":{"path":"/2026/data.csv","name":"data.csv","size":42,"hash":{"sha256":"ab12"}},` +
		`"airlock":{"transfer":{"id":"t1","direction":"ingress","supplier":"acme","state":"delivered"},"conn_id":"C1","detail":{"to":"s3://x"},"prev_hash":"p"}}`
	if string(got) != want {
		t.Errorf("ECS:\n got %s\nwant %s", got, want)
	}
}

// TestExportFileResumes: an export cut short, a line half written, goes
// on from the last whole line: every event exactly once.
func TestExportFileResumes(t *testing.T) {
	t.Parallel()
	l := openLedger(t, "sqlite:"+filepath.Join(t.TempDir(), "a.db"))
	record(t, l, 2*exportBatch+5, "alice")
	out := filepath.Join(t.TempDir(), "audit.ecs.json")
	x := &Exporter{Events: l}
	if err := x.ExportFile(t.Context(), out); err != nil {
		t.Fatal(err)
	}
	// A kill in the middle of a write leaves part of a line.
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	cut := bytes.LastIndexByte(data[:len(data)-1], '\n')
	cut = bytes.LastIndexByte(data[:cut], '\n') + 1 + 30 // two lines back, 30 bytes in
	if err := os.WriteFile(out, data[:cut], 0o640); err != nil {
		t.Fatal(err)
	}
	record(t, l, 3, "bob")
	if err := x.ExportFile(t.Context(), out); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var next int64 = 1
	for sc.Scan() {
		var doc ECS
		if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
			t.Fatalf("line %d: %v: %q", next, err, sc.Text())
		}
		if doc.Event.Sequence != next {
			t.Fatalf("line %d has seq %d", next, doc.Event.Sequence)
		}
		next++
	}
	if want := int64(2*exportBatch + 5 + 3); next-1 != want {
		t.Errorf("%d events exported, want %d", next-1, want)
	}
	if err := os.WriteFile(out, []byte("not json\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := x.ExportFile(t.Context(), out); err == nil {
		t.Error("exported after a line that is not an event")
	}
}
