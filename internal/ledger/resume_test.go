package ledger

import (
	"errors"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger/ledgertest"
)

func TestResumePoint(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		l := openLedger(t, dsn)
		tr, err := l.Begin(ctx, NewTransfer(Transfer{Supplier: "acme", Path: "/big.bin", Node: "a"}), Event{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.ResumePoint(ctx, tr.ID); !errors.Is(err, ErrNoResumePoint) {
			t.Fatalf("ResumePoint of an upload being received = %v; want ErrNoResumePoint", err)
		}
		size := int64(6 << 20)
		want := ResumePoint{Size: size, HashState: []byte{0, 1, 2, 0xff}, StoreState: `{"file":"x"}`,
			ExpiresAt: time.Now().Add(24 * time.Hour).UTC().Truncate(time.Microsecond)}
		if _, err := l.Advance(ctx, tr.ID, []State{Receiving}, Interrupted, Change{Size: &size, Resume: &want}, Event{}); err != nil {
			t.Fatal(err)
		}
		got, err := l.ResumePoint(ctx, tr.ID)
		if err != nil || got.Size != want.Size || string(got.HashState) != string(want.HashState) ||
			got.StoreState != want.StoreState || !got.ExpiresAt.Equal(want.ExpiresAt) {
			t.Fatalf("ResumePoint = %+v, %v; want %+v", got, err, want)
		}

		// Claimed by another node: the row moves there, the point goes.
		node := "b"
		claimed, err := l.Advance(ctx, tr.ID, []State{Interrupted}, Receiving, Change{Node: &node}, Event{})
		if err != nil || claimed.Node != "b" || claimed.State != Receiving {
			t.Fatalf("claim = %+v, %v; want receiving on node b", claimed, err)
		}
		if _, err := l.ResumePoint(ctx, tr.ID); !errors.Is(err, ErrNoResumePoint) {
			t.Errorf("ResumePoint after the claim = %v; want ErrNoResumePoint", err)
		}
		if _, err := l.Advance(ctx, tr.ID, []State{Interrupted}, Receiving, Change{Node: &node}, Event{}); !errors.Is(err, ErrStateConflict) {
			t.Errorf("second claim = %v; want ErrStateConflict", err)
		}
		if got, err := l.Get(ctx, tr.ID); err != nil || got.Node != "b" {
			t.Errorf("Get after the claim = %+v, %v; want node b", got, err)
		}

		// Interrupted again, then failed for good: the point goes with it.
		if _, err := l.Advance(ctx, tr.ID, []State{Receiving}, Interrupted, Change{Resume: &want}, Event{}); err != nil {
			t.Fatal(err)
		}
		reason := "not resumed in time"
		if _, err := l.Advance(ctx, tr.ID, []State{Interrupted}, Failed, Change{Error: &reason}, Event{}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.ResumePoint(ctx, tr.ID); !errors.Is(err, ErrNoResumePoint) {
			t.Errorf("ResumePoint after failing = %v; want ErrNoResumePoint", err)
		}
		if _, err := l.VerifyAudit(ctx); err != nil {
			t.Errorf("VerifyAudit: %v", err)
		}
	})
}
