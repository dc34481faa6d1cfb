package ledger

import (
	"slices"
	"testing"

	"github.com/airlock-gw/airlock/internal/ledger/ledgertest"
)

func TestDirs(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		l := openLedger(t, dsn)
		for _, p := range []string{"/b", "/a", "/a/x", "/a"} { // "/a" twice: no error, one row
			if err := l.MakeDir(ctx, "acme", p, Event{Actor: "acme"}); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.MakeDir(ctx, "globex", "/g", Event{Actor: "globex"}); err != nil {
			t.Fatal(err)
		}
		if err := l.RemoveDir(ctx, "acme", "/b", Event{Actor: "acme"}); err != nil {
			t.Fatal(err)
		}
		got, err := l.Dirs(ctx, "acme", 10)
		if want := []string{"/a", "/a/x"}; err != nil || !slices.Equal(got, want) {
			t.Errorf("Dirs(acme) = %q, %v; want %q", got, err, want)
		}
		if got, err := l.Dirs(ctx, "acme", 1); err != nil || len(got) != 1 {
			t.Errorf("Dirs(acme, 1) = %q, %v; want one", got, err)
		}
		evs, err := l.Events(ctx, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, ev := range evs {
			kinds = append(kinds, ev.Kind)
		}
		want := []string{"dir.create", "dir.create", "dir.create", "dir.create", "dir.create", "dir.remove"}
		if !slices.Equal(kinds, want) {
			t.Errorf("events %q, want %q", kinds, want)
		}
		if _, err := l.VerifyAudit(ctx); err != nil {
			t.Errorf("audit chain: %v", err)
		}
	})
}
