package sftpd

import (
	"os"
	"slices"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/sftptest"
)

// TestSettledStayVisible: a delivered upload stays in its supplier's
// listing, not readable, with the modification time its client set; a
// failed upload of the same path does not hide it.
func TestSettledStayVisible(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{receiptRetention: time.Hour})
	c := ts.sftpClient(t, uploader)
	ctx := t.Context()
	settle := func(p string, to ledger.State) ledger.Transfer {
		t.Helper()
		trs, err := ts.ledger.List(ctx, ledger.Filter{Supplier: uploader, Path: p, States: []ledger.State{ledger.Received}})
		if err != nil || len(trs) != 1 {
			t.Fatalf("received transfer at %s: %v, %v", p, trs, err)
		}
		tr, err := ts.ledger.Advance(ctx, trs[0].ID, []ledger.State{ledger.Received}, to, ledger.Change{}, ledger.Event{})
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	data := source(1000)
	if err := putFile(c, "/a.csv", data); err != nil {
		t.Fatal(err)
	}
	a := settle("/a.csv", ledger.Delivered)

	fi, err := c.Stat("/a.csv")
	if err != nil || fi.Size() != int64(len(data)) || fi.IsDir() {
		t.Fatalf("Stat(/a.csv) delivered = %v, %v; want a file of %d bytes", fi, err, len(data))
	}
	if f, err := c.Open("/a.csv"); err == nil {
		_, rerr := f.Read(make([]byte, 10))
		f.Close()
		if rerr == nil {
			t.Error("read a delivered upload back")
		}
	}

	// Times are kept, once per change; modes are accepted; sizes refused.
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	for range 3 {
		if err := c.Chtimes("/a.csv", mtime, mtime); err != nil {
			t.Fatalf("Chtimes on a delivered upload: %v", err)
		}
	}
	if err := c.Chmod("/a.csv", 0o644); err != nil {
		t.Errorf("Chmod on a delivered upload: %v", err)
	}
	if err := c.Truncate("/a.csv", 3); err == nil {
		t.Error("Truncate of a delivered upload succeeded")
	}
	if fi, err := c.Stat("/a.csv"); err != nil || !fi.ModTime().Equal(mtime) {
		t.Errorf("Stat after Chtimes: %v, %v; want mtime %v", fi, err, mtime)
	}
	if fi, err := c.Lstat("/a.csv"); err != nil || !fi.ModTime().Equal(mtime) {
		t.Errorf("Lstat after Chtimes: %v, %v; want mtime %v", fi, err, mtime)
	}
	evs, err := ts.ledger.Events(ctx, a.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n := countKind(evs, "upload.mtime"); n != 1 {
		t.Errorf("%d upload.mtime events for three Chtimes to one time, want 1", n)
	}

	// A failed upload of the same path does not hide the delivered one.
	if err := putFile(c, "/a.csv", source(10)); err != nil {
		t.Fatal(err)
	}
	settle("/a.csv", ledger.Failed)
	infos, err := c.ReadDir("/")
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(infos, func(fi os.FileInfo) bool { return fi.Name() == "a.csv" })
	if i < 0 || infos[i].Size() != int64(len(data)) || !infos[i].ModTime().Equal(mtime) {
		t.Errorf("ReadDir(/) = %v; want a.csv as delivered, %d bytes at %v", fileNames(infos), len(data), mtime)
	}
	// An upload on its way cannot be removed; a settled one leaves the
	// listing (the failed re-upload with it), its receipt stays readable.
	if err := putFile(c, "/p.csv", data); err != nil {
		t.Fatal(err)
	}
	if err := c.Remove("/p.csv"); err == nil {
		t.Error("Remove of an upload on its way succeeded")
	}
	if err := c.Remove("/a.csv"); err != nil {
		t.Fatalf("Remove of a delivered upload: %v", err)
	}
	if _, err := c.Stat("/a.csv"); err == nil {
		t.Error("Stat(/a.csv) after Remove succeeded")
	}
	if infos, err := c.ReadDir("/"); err != nil || slices.Contains(fileNames(infos), "a.csv") {
		t.Errorf("ReadDir(/) after Remove = %v, %v", fileNames(infos), err)
	}
	if _, err := c.Stat("/a.csv.receipt.json"); err != nil {
		t.Errorf("the receipt went with the listing: %v", err)
	}
	if err := c.Remove("/a.csv"); err == nil {
		t.Error("a second Remove succeeded")
	}
	if evs, err := ts.ledger.Events(ctx, a.ID, 0); err != nil || countKind(evs, "upload.hide") != 1 {
		t.Errorf("events of the removed upload: %v; want one upload.hide", err)
	}

	// A quarantined upload alone is shown, with its receipt.
	if err := putFile(c, "/q.bin", data); err != nil {
		t.Fatal(err)
	}
	settle("/q.bin", ledger.Quarantined)
	if fi, err := c.Stat("/q.bin"); err != nil || fi.Size() != int64(len(data)) {
		t.Errorf("Stat(/q.bin) quarantined = %v, %v", fi, err)
	}
	if _, err := ts.ledger.VerifyAudit(ctx); err != nil {
		t.Errorf("audit: %v", err)
	}
}

func countKind(evs []ledger.Event, kind string) int {
	n := 0
	for _, ev := range evs {
		if ev.Kind == kind {
			n++
		}
	}
	return n
}

// TestSetTimesOnOpenAndHeldUploads: FSETSTAT on an upload still open (as
// OpenSSH's put -p sends before closing) and SETSTAT on one held under a
// temporary name keep the time, through the rename.
func TestSetTimesOnOpenAndHeldUploads(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{receiptRetention: time.Hour})
	r := ts.rawClient(t, uploader)
	c := ts.sftpClient(t, uploader)
	mtime := time.Date(2023, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, p := range []string{"/open.csv", "/held.csv.filepart"} {
		typ, body := r.Call(sftptest.FXPOpen, p, uint32(sftptest.FXFWrite|sftptest.FXFCreat|sftptest.FXFTrunc), uint32(0))
		if typ != sftptest.FXPHandle {
			code, msg := r.StatusOf(body)
			t.Fatalf("open %s: status %d %q", p, code, msg)
		}
		handle, _ := r.String(body)
		if code, msg := r.Status(sftptest.FXPWrite, handle, uint64(0), "data"); code != sftptest.FXOK {
			t.Fatalf("write %s: %d %q", p, code, msg)
		}
		if p == "/open.csv" {
			if code, msg := r.Status(sftptest.FXPFsetstat, handle, uint32(attrTimes), uint32(mtime.Unix()), uint32(mtime.Unix())); code != sftptest.FXOK {
				t.Errorf("fsetstat of an open upload: %d %q", code, msg)
			}
		}
		if code, msg := r.Status(sftptest.FXPClose, handle); code != sftptest.FXOK {
			t.Fatalf("close %s: %d %q", p, code, msg)
		}
	}
	if code, msg := r.Status(sftptest.FXPSetstat, "/held.csv.filepart", uint32(attrTimes), uint32(mtime.Unix()), uint32(mtime.Unix())); code != sftptest.FXOK {
		t.Errorf("setstat of a held upload: %d %q", code, msg)
	}
	if code, msg := r.Status(sftptest.FXPRename, "/held.csv.filepart", "/held.csv"); code != sftptest.FXOK {
		t.Fatalf("rename: %d %q", code, msg)
	}
	for _, p := range []string{"/open.csv", "/held.csv"} {
		if fi, err := c.Stat(p); err != nil || !fi.ModTime().Equal(mtime) || fi.Size() != 4 {
			t.Errorf("Stat(%s) = %v, %v; want 4 bytes at %v", p, fi, err, mtime)
		}
	}
	if _, err := ts.ledger.VerifyAudit(t.Context()); err != nil {
		t.Errorf("audit: %v", err)
	}
}
