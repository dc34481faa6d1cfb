package pipeline

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger/ledgertest"
)

// TestRetention: objects of a pull bucket last written before the
// retention are deleted, each audited; newer ones stay.
func TestRetention(t *testing.T) {
	t.Parallel()
	f := newFixture(t, ledgertest.SQLite(t), fixtureOptions{})
	bucket := filepath.Join(t.TempDir(), "pull")
	now := time.Now()
	for name, age := range map[string]time.Duration{
		"old.csv": 31 * 24 * time.Hour, "nested/old.bin": 40 * 24 * time.Hour,
		"new.csv": 29 * 24 * time.Hour, "nested/fresh.bin": time.Minute,
	} {
		p := filepath.Join(bucket, filepath.FromSlash(name))
		writeFile(t, p, []byte(name))
		if err := os.Chtimes(p, now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	r := Retention{Dataset: "shared", Location: bucket, Keep: 30 * 24 * time.Hour}
	for range 2 { // a second run finds nothing more to do
		if err := f.workers.expire(t.Context(), r, now); err != nil {
			t.Fatal(err)
		}
	}
	left := f.files(bucket)
	slices.Sort(left)
	if !slices.Equal(left, []string{"nested/fresh.bin", "new.csv"}) {
		t.Errorf("left in the pull bucket: %v; want the two newer files", left)
	}
	evs, err := f.ledger.Events(t.Context(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var deleted []string
	for _, ev := range evs {
		if ev.Kind == "retention.delete" && ev.Detail["dataset"] == "shared" {
			deleted = append(deleted, ev.Detail["key"])
		}
	}
	slices.Sort(deleted)
	if !slices.Equal(deleted, []string{"nested/old.bin", "old.csv"}) {
		t.Errorf("retention.delete events for %v; want one per old file", deleted)
	}
}
