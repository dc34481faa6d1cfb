package ledger

import (
	"slices"
	"strings"
	"testing"

	"github.com/airlock-gw/airlock/internal/ledger/ledgertest"
)

func TestUploadSessions(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		l := openLedger(t, dsn)
		a, err := l.StartUploads(ctx, "node-a", "acme")
		if err != nil {
			t.Fatal(err)
		}
		b, err := l.StartUploads(ctx, "node-a", "globex")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.StartUploads(ctx, "node-b", "acme"); err != nil {
			t.Fatal(err)
		}
		if a.ID == b.ID || a.Node != "node-a" || a.Supplier != "acme" || a.StartedAt.IsZero() {
			t.Errorf("sessions %+v and %+v", a, b)
		}
		if p := a.LandingPrefix(); p != "acme/"+a.ID+"." || strings.Count(p, "/") != 1 {
			t.Errorf("landing prefix %q", p)
		}

		got, err := l.UploadSessions(ctx, "node-a")
		if err != nil || len(got) != 2 || !slices.Contains(got, a) || !slices.Contains(got, b) {
			t.Fatalf("UploadSessions(node-a) = %+v, %v; want %+v and %+v", got, err, a, b)
		}
		if err := l.EndUploads(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		if err := l.EndUploads(ctx, a.ID); err != nil {
			t.Errorf("ending a session twice: %v", err)
		}
		if got, err := l.UploadSessions(ctx, "node-a"); err != nil || len(got) != 1 || got[0] != b {
			t.Errorf("after ending one: %+v, %v; want only %+v", got, err, b)
		}
		if got, err := l.UploadSessions(ctx, "node-c"); err != nil || len(got) != 0 {
			t.Errorf("UploadSessions(node-c) = %+v, %v; want none", got, err)
		}
	})
}
