package sftpd

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/sftptest"
)

func TestReceipts(t *testing.T) {
	t.Parallel()
	var (
		mu       sync.Mutex
		handedOn []string
	)
	ts := newTestServer(t, serverOptions{
		receiptRetention: time.Hour,
		handoff: func(_ context.Context, _ *sql.Tx, tr ledger.Transfer) error {
			mu.Lock()
			defer mu.Unlock()
			handedOn = append(handedOn, tr.Path)
			return nil
		},
	})
	c := ts.sftpClient(t, uploader)
	data := source(1000)
	for _, p := range []string{"/a.csv", "/b.csv.filepart"} {
		if err := putFile(c, p, data); err != nil {
			t.Fatalf("upload %s: %v", p, err)
		}
	}
	if err := c.Mkdir("/2026"); err != nil {
		t.Fatal(err)
	}
	if err := putFile(c, "/2026/c.csv", data); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := slices.Clone(handedOn)
	mu.Unlock()
	// The temporary name is held, not handed on, until it is renamed.
	if !slices.Equal(got, []string{"/a.csv", "/2026/c.csv"}) {
		t.Fatalf("handed on %v, want /a.csv and /2026/c.csv", got)
	}
	if err := c.Rename("/b.csv.filepart", "/b.csv"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got = slices.Clone(handedOn)
	mu.Unlock()
	if got[len(got)-1] != "/b.csv" {
		t.Fatalf("rename did not hand /b.csv on: %v", got)
	}

	// The pipeline settles a.csv and c.csv; b.csv is still on its way.
	settle := func(p string, to ledger.State) ledger.Transfer {
		t.Helper()
		trs, err := ts.ledger.List(t.Context(), ledger.Filter{Supplier: uploader, Path: p})
		if err != nil || len(trs) != 1 {
			t.Fatalf("transfer at %s: %v, %v", p, trs, err)
		}
		verdict := "clean (test)"
		tr, err := ts.ledger.Advance(t.Context(), trs[0].ID, []ledger.State{ledger.Received}, to,
			ledger.Change{ScanResult: &verdict}, ledger.Event{})
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	a := settle("/a.csv", ledger.Delivered)
	settle("/2026/c.csv", ledger.Quarantined)

	infos, err := c.ReadDir("/")
	if err != nil {
		t.Fatal(err)
	}
	// A settled upload stays listed (see visible.go); its receipt is
	// served by name, not listed.
	if want := []string{"2026", "a.csv", "b.csv"}; !slices.Equal(fileNames(infos), want) {
		t.Errorf("ReadDir(/) = %v, want %v", fileNames(infos), want)
	}
	if infos, err := c.ReadDir("/2026"); err != nil || !slices.Equal(fileNames(infos), []string{"c.csv"}) {
		t.Errorf("ReadDir(/2026) = %v, %v", fileNames(infos), err)
	}
	// Made directories are remembered in memory only: after a restart,
	// /2026 is a directory because a settled upload is below it.
	ts.srv.dirs.remove(uploader, "/2026")
	if fi, err := c.Stat("/2026"); err != nil || !fi.IsDir() {
		t.Errorf("Stat(/2026), holding only a settled upload = %v, %v; want a directory", fi, err)
	}

	f, err := c.Open("/a.csv.receipt.json")
	if err != nil {
		t.Fatalf("open receipt: %v", err)
	}
	body, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	var rc Receipt
	if err := json.Unmarshal(body, &rc); err != nil {
		t.Fatalf("receipt is not JSON: %v\n%s", err, body)
	}
	if rc.TransferID != a.ID || rc.Outcome != "delivered" || rc.SHA256 != sha256Hex(data) || rc.Size != int64(len(data)) ||
		rc.Path != "/a.csv" || rc.ScanResult != "clean (test)" || rc.Note != "" {
		t.Errorf("receipt = %+v", rc)
	}
	if fi, err := c.Stat("/a.csv.receipt.json"); err != nil || fi.Size() != int64(len(body)) {
		t.Errorf("Stat(receipt) = %v, %v; want size %d", fi, err, len(body))
	}

	if err := putFile(c, "/d.csv.filepart", data); err != nil {
		t.Fatal(err)
	}
	r := ts.rawClient(t, uploader)
	refusals := []struct {
		name   string
		typ    byte
		fields []any
		want   string // in the status message
	}{
		{"remove a receipt", fxpRemove, []any{"/a.csv.receipt.json"}, "read-only"},
		{"upload under a receipt name", fxpOpen, []any{"/x.csv.receipt.json", uint32(sftptest.FXFWrite | sftptest.FXFCreat), uint32(0)}, "kept for receipts"},
		{"mkdir under a receipt name", fxpMkdir, []any{"/e.receipt.json", uint32(0)}, "kept for receipts"},
		{"read a receipt not yet made", fxpOpen, []any{"/b.csv.receipt.json", uint32(sftptest.FXFRead), uint32(0)}, "write-only"},
	}
	for _, tt := range refusals {
		if code, msg := r.Status(tt.typ, tt.fields...); code != sftptest.FXPermissionDenied || !strings.Contains(msg, tt.want) {
			t.Errorf("%s: status %d %q, want permission denied saying %q", tt.name, code, msg, tt.want)
		}
	}
	// Only the session holding a temporary name can rename it.
	if err := c.Rename("/d.csv.filepart", "/d.csv.receipt.json"); err == nil {
		t.Error("rename onto a receipt name succeeded")
	}
	if trs, err := ts.ledger.List(t.Context(), ledger.Filter{Supplier: uploader, Path: "/d.csv.filepart"}); err != nil || len(trs) != 1 {
		t.Errorf("the held upload moved: %v, %v", trs, err)
	}

	// Receipts go once their retention is over.
	ts.srv.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if infos, err := c.ReadDir("/"); err != nil || slices.Contains(fileNames(infos), "a.csv") {
		t.Errorf("ReadDir(/) after the retention = %v, %v", fileNames(infos), err)
	}
	if _, err := c.Stat("/a.csv.receipt.json"); err == nil {
		t.Error("the receipt is still there after the retention")
	}
}
