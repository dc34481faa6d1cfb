package ledger

import (
	"os"
	"path/filepath"
	"testing"
)

// TestPagesPerCommit pins how many pages the commits of an upload and of a
// pipeline step write to SQLite's log. Every page is two writes and part of
// what the writer holds everyone else up for, so an index or a column set
// without need shows here first.
func TestPagesPerCommit(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "a.db")
	l := openLedger(t, "sqlite:"+file)
	ctx := t.Context()
	var pageSize int64
	if err := l.DB().QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	// The log grows by a header and a page per page a commit writes, as long
	// as nothing checkpoints it back to its start, as nothing does this soon.
	logged := func() int64 {
		t.Helper()
		fi, err := os.Stat(file + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size() / (pageSize + 24)
	}

	before := logged()
	tr, err := l.Record(ctx, NewTransfer(Transfer{Supplier: "acme", Path: "/a.csv", LandingKey: "acme/s.K", Node: "n1"}),
		Event{}, Received, Change{Size: ptr(int64(3)), SHA256: ptr("ab")}, Event{Kind: "upload.finish"})
	if err != nil {
		t.Fatal(err)
	}
	recorded := logged()
	if _, err := l.Advance(ctx, tr.ID, []State{Received}, Scanning, Change{}, Event{}); err != nil {
		t.Fatal(err)
	}
	advanced := logged()

	// A row and its five index entries, two events and their index
	// entries, the chain head.
	if got, want := recorded-before, int64(9); got > want {
		t.Errorf("recording an upload wrote %d pages, want at most %d", got, want)
	}
	// The row and its two entries by state, an event and its entry, the head.
	if got, want := advanced-recorded, int64(6); got > want {
		t.Errorf("a state change wrote %d pages, want at most %d", got, want)
	}
}
