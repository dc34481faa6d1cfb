package ledger

import (
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger/ledgertest"
)

func TestAnnotate(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		l := openLedger(t, dsn)
		tr, err := l.Begin(ctx, NewTransfer(Transfer{Supplier: "acme", Path: "/a.csv"}), Event{})
		if err != nil {
			t.Fatal(err)
		}
		events := func() int {
			t.Helper()
			evs, err := l.Events(ctx, tr.ID, 0)
			if err != nil {
				t.Fatal(err)
			}
			return len(evs)
		}
		mt := time.Date(2025, 6, 7, 8, 9, 10, 0, time.FixedZone("x", 3600))
		got, changed, err := l.SetMTime(ctx, tr.ID, mt, Event{Actor: "acme"})
		if err != nil || !changed || got.MTime == nil || !got.MTime.Equal(mt) || got.UpdatedAt != tr.UpdatedAt || got.State != Receiving {
			t.Fatalf("SetMTime = %+v, %v, %v; want the mtime set, state and updated_at kept", got, changed, err)
		}
		n := events()
		// The same time again records nothing: a client cannot flood the audit.
		if _, changed, err := l.SetMTime(ctx, tr.ID, mt, Event{}); err != nil || changed {
			t.Fatalf("SetMTime again = %v, %v; want unchanged", changed, err)
		}
		if events() != n {
			t.Errorf("setting the same mtime again appended an event")
		}
		// A later move keeps it, and the chain vouches for the row.
		size := int64(3)
		if _, err := l.Advance(ctx, tr.ID, []State{Receiving}, Received, Change{Size: &size}, Event{}); err != nil {
			t.Fatal(err)
		}
		if got, err := l.Get(ctx, tr.ID); err != nil || got.MTime == nil || !got.MTime.Equal(mt) {
			t.Errorf("after Advance: %+v, %v; want mtime %v", got.MTime, err, mt)
		}
		if _, err := l.VerifyAudit(ctx); err != nil {
			t.Errorf("VerifyAudit: %v", err)
		}
		if _, _, err := l.SetMTime(ctx, "nonexistent", mt, Event{}); err == nil {
			t.Errorf("SetMTime of an unknown transfer succeeded")
		}

		// Hidden once, leaving state and times; listings may leave it out.
		n = events()
		for i := range 2 {
			got, changed, err := l.Hide(ctx, tr.ID, Event{Actor: "acme"})
			if err != nil || changed != (i == 0) || got.HiddenAt == nil || got.State != Received || got.MTime == nil {
				t.Fatalf("Hide #%d = %+v, %v, %v", i+1, got, changed, err)
			}
		}
		if got := events(); got != n+1 {
			t.Errorf("two Hides appended %d events, want 1", got-n)
		}
		for shown, want := range map[bool]int{false: 1, true: 0} {
			if trs, err := l.List(ctx, Filter{Supplier: "acme", Shown: shown}); err != nil || len(trs) != want {
				t.Errorf("List(Shown: %v) = %d transfers, %v; want %d", shown, len(trs), err, want)
			}
		}
		if _, err := l.VerifyAudit(ctx); err != nil {
			t.Errorf("VerifyAudit after Hide: %v", err)
		}
	})
}
