package ledger

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger/ledgertest"
)

func queued(route, key string, size int64, mtime time.Time, writer string) Transfer {
	return NewTransfer(Transfer{Direction: Egress, State: Queued, Supplier: writer, Route: route,
		Path: "/" + strings.TrimPrefix(key, route+"/"), Size: size, LandingKey: key, MTime: &mtime})
}

func TestAdmit(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		l := openLedger(t, dsn)
		at := time.Date(2026, 12, 7, 10, 0, 0, 123456000, time.UTC)
		var hooked int
		hook := func(context.Context, *sql.Tx, Transfer) error { hooked++; return nil }

		first, err := l.Admit(ctx, queued("proj", "proj/a/b.csv", 10, at, "ann"), Event{}, hook)
		if err != nil || first.State != Queued || hooked != 1 {
			t.Fatalf("Admit = %+v, %v (hook ran %d times); want queued, hook once", first, err, hooked)
		}
		// Seen again, by any node: nothing changes, the hook does not run.
		if _, err := l.Admit(ctx, queued("proj", "proj/a/b.csv", 10, at, "ann"), Event{}, hook); !errors.Is(err, ErrAdmitted) || hooked != 1 {
			t.Fatalf("second Admit = %v (hook ran %d times); want ErrAdmitted, hook once", err, hooked)
		}
		// A new version (size or mtime), or another route: a transfer of its own.
		for _, tr := range []Transfer{
			queued("proj", "proj/a/b.csv", 11, at, "ann"),
			queued("proj", "proj/a/b.csv", 10, at.Add(time.Second), "ann"),
			queued("other", "proj/a/b.csv", 10, at, "ann"),
		} {
			if _, err := l.Admit(ctx, tr, Event{}, nil); err != nil {
				t.Errorf("Admit %s of %s, %d bytes at %v = %v; want a new transfer", tr.LandingKey, tr.Route, tr.Size, tr.MTime, err)
			}
		}
		// A failed hook leaves nothing behind.
		boom := errors.New("boom")
		if _, err := l.Admit(ctx, queued("proj", "proj/c", 1, at, "ann"), Event{},
			func(context.Context, *sql.Tx, Transfer) error { return boom }); !errors.Is(err, boom) {
			t.Fatalf("Admit with a failing hook = %v; want boom", err)
		}
		if _, err := l.Admit(ctx, queued("proj", "proj/c", 1, at, "ann"), Event{}, nil); err != nil {
			t.Errorf("Admit after the failed one = %v; want admitted", err)
		}
		got, err := l.List(ctx, Filter{Route: "proj"})
		if err != nil || len(got) != 4 {
			t.Fatalf("List route proj = %d transfers, %v; want 4", len(got), err)
		}
		if g, err := l.Get(ctx, first.ID); err != nil || g.Route != "proj" || g.Direction != Egress || g.MTime == nil || !g.MTime.Equal(at) {
			t.Errorf("Get = %+v, %v; want route proj, egress, mtime %v", g, err, at)
		}
		if _, err := l.VerifyAudit(ctx); err != nil {
			t.Errorf("audit verify: %v", err)
		}
	})
}

func TestAdmitRefusesIncomplete(t *testing.T) {
	t.Parallel()
	l := openLedger(t, ledgertest.SQLite(t))
	at := time.Now()
	for name, tr := range map[string]Transfer{
		"not queued": NewTransfer(Transfer{Supplier: "ann", Route: "proj", Path: "/a", LandingKey: "proj/a", MTime: &at}),
		"no route":   queued("", "proj/a", 1, at, "ann"),
		"no mtime":   NewTransfer(Transfer{State: Queued, Supplier: "ann", Route: "proj", Path: "/a", LandingKey: "proj/a"}),
		"no writer":  queued("proj", "proj/a", 1, at, ""),
	} {
		if _, err := l.Admit(t.Context(), tr, Event{}, nil); err == nil {
			t.Errorf("Admit %s: no error", name)
		}
	}
}

func TestApprove(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		l := openLedger(t, dsn)
		tr, err := l.Admit(ctx, queued("proj", "proj/x", 1, time.Now(), "ann"), Event{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := l.Approve(ctx, tr.ID, "bob", 2, Change{}, Event{}); !errors.Is(err, ErrStateConflict) {
			t.Fatalf("Approve while queued = %v; want ErrStateConflict", err)
		}
		if _, err := l.Advance(ctx, tr.ID, []State{Queued}, AwaitingApproval, Change{}, Event{}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := l.Approve(ctx, tr.ID, "ann", 2, Change{}, Event{}); !errors.Is(err, ErrOwnApproval) {
			t.Fatalf("the writer's approval = %v; want ErrOwnApproval", err)
		}
		got, n, err := l.Approve(ctx, tr.ID, "bob", 2, Change{}, Event{})
		if err != nil || n != 1 || got.State != AwaitingApproval {
			t.Fatalf("bob's approval = %s, %d, %v; want awaiting_approval, 1", got.State, n, err)
		}
		if _, _, err := l.Approve(ctx, tr.ID, "bob", 2, Change{}, Event{}); !errors.Is(err, ErrApprovedBefore) {
			t.Fatalf("bob again = %v; want ErrApprovedBefore", err)
		}
		var hooked bool
		got, n, err = l.Approve(ctx, tr.ID, "cat", 2, Change{InTx: func(_ context.Context, _ *sql.Tx, tr Transfer) error {
			hooked = tr.State == Delivering
			return nil
		}}, Event{})
		if err != nil || n != 2 || got.State != Delivering || !hooked {
			t.Fatalf("cat's approval = %s, %d, %v (hook saw delivering: %v); want delivering, 2, hooked", got.State, n, err, hooked)
		}
		if who, err := l.Approvers(ctx, tr.ID); err != nil || strings.Join(who, ",") != "bob,cat" {
			t.Errorf("Approvers = %v, %v; want bob,cat", who, err)
		}
		if _, err := l.VerifyAudit(ctx); err != nil {
			t.Errorf("audit verify: %v", err)
		}
	})
}

// TestApproveConcurrently: two approvals that both complete the count
// cannot both move the transfer.
func TestApproveConcurrently(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	l := openLedger(t, ledgertest.SQLite(t))
	tr, err := l.Admit(ctx, queued("proj", "proj/x", 1, time.Now(), "ann"), Event{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Advance(ctx, tr.ID, []State{Queued}, AwaitingApproval, Change{}, Event{}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	moved := 0
	var wg sync.WaitGroup
	for _, who := range []string{"bob", "cat", "dan"} {
		wg.Go(func() {
			_, _, err := l.Approve(ctx, tr.ID, who, 1, Change{InTx: func(context.Context, *sql.Tx, Transfer) error {
				mu.Lock()
				moved++
				mu.Unlock()
				return nil
			}}, Event{})
			if err != nil && !errors.Is(err, ErrStateConflict) {
				t.Errorf("%s: %v", who, err)
			}
		})
	}
	wg.Wait()
	if moved != 1 {
		t.Errorf("the transfer moved %d times; want once", moved)
	}
}

// TestApproveBatch: a batch is approved whole, once every member awaits
// approval, or not at all.
func TestApproveBatch(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		l := openLedger(t, dsn)
		at := time.Now()
		members := []Transfer{queued("cbol", "day/a", 1, at, "etl"), queued("cbol", "day/b", 2, at, "etl"), queued("cbol", "day/c", 3, at, "etl")}
		b, err := l.OpenBatch(ctx, Batch{Route: "cbol", Trigger: "day/flag", TriggerVersion: "0:1"}, members, nil)
		if err != nil {
			t.Fatal(err)
		}
		trs, err := l.List(ctx, Filter{Batch: b.ID})
		if err != nil || len(trs) != 3 {
			t.Fatalf("members: %d, %v", len(trs), err)
		}
		for _, tr := range trs[1:] {
			if _, err := l.Advance(ctx, tr.ID, []State{Queued}, AwaitingApproval, Change{}, Event{}); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := l.ApproveBatch(ctx, b.ID, "bob", 2, Change{}, Event{}); !errors.Is(err, ErrStateConflict) {
			t.Fatalf("approval with a member still queued = %v; want ErrStateConflict", err)
		}
		if who, _ := l.Approvers(ctx, trs[1].ID); len(who) != 0 {
			t.Fatalf("the refused batch approval left approvals %v", who)
		}
		if _, err := l.Advance(ctx, trs[0].ID, []State{Queued}, AwaitingApproval, Change{}, Event{}); err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			who, batch string
			want       error
		}{{"etl", b.ID, ErrOwnApproval}, {"bob", "no-such-batch", ErrNotFound}} {
			if _, _, err := l.ApproveBatch(ctx, tt.batch, tt.who, 2, Change{}, Event{}); !errors.Is(err, tt.want) {
				t.Errorf("%s approving %s = %v; want %v", tt.who, tt.batch, err, tt.want)
			}
		}
		got, n, err := l.ApproveBatch(ctx, b.ID, "bob", 2, Change{}, Event{})
		if err != nil || n != 1 || len(got) != 3 || got[0].State != AwaitingApproval {
			t.Fatalf("bob's approval = %d members, %d, %v; want 3 awaiting, 1 approval", len(got), n, err)
		}
		if _, _, err := l.ApproveBatch(ctx, b.ID, "bob", 2, Change{}, Event{}); !errors.Is(err, ErrApprovedBefore) {
			t.Fatalf("bob again = %v; want ErrApprovedBefore", err)
		}
		moved := 0
		got, n, err = l.ApproveBatch(ctx, b.ID, "cat", 2, Change{InTx: func(context.Context, *sql.Tx, Transfer) error { moved++; return nil }}, Event{})
		if err != nil || n != 2 || moved != 3 {
			t.Fatalf("cat's approval = %v, %d approvals, %d moved; want 2 and all 3", err, n, moved)
		}
		for _, tr := range got {
			if who, _ := l.Approvers(ctx, tr.ID); tr.State != Delivering || strings.Join(who, ",") != "bob,cat" {
				t.Errorf("%s: %s approved by %v; want delivering, bob,cat", tr.Path, tr.State, who)
			}
		}
		evs, err := l.Events(ctx, trs[2].ID, 0)
		if err != nil || evs[len(evs)-1].Kind != "approval.granted" || evs[len(evs)-1].Detail["batch"] != b.ID {
			t.Errorf("last event of a member: %+v, %v; want approval.granted naming the batch", evs[len(evs)-1], err)
		}
		if _, err := l.VerifyAudit(ctx); err != nil {
			t.Errorf("audit verify: %v", err)
		}
	})
}

// TestRefuseBatch: a refused trigger is a failed batch of no files,
// recorded once, its reason audited.
func TestRefuseBatch(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		l := openLedger(t, dsn)
		flag := Batch{Route: "inbox", Trigger: "r1/airlock-manifest.json", TriggerVersion: "10:1"}
		hooked := 0
		b, err := l.RefuseBatch(ctx, flag, "x.csv is not in the manifest", func(context.Context, *sql.Tx, Batch) error { hooked++; return nil })
		if err != nil || b.State != BatchFailed || b.Files != 0 || hooked != 1 {
			t.Fatalf("RefuseBatch = %+v, %v (hook ran %d times)", b, err, hooked)
		}
		if _, err := l.RefuseBatch(ctx, flag, "again", nil); !errors.Is(err, ErrAdmitted) {
			t.Errorf("the same trigger refused again = %v; want ErrAdmitted", err)
		}
		got, err := l.GetBatch(ctx, b.ID)
		if err != nil || got.State != BatchFailed || got.SettledAt == nil {
			t.Errorf("GetBatch = %+v, %v; want failed and settled", got, err)
		}
		evs, err := l.Events(ctx, "", 0)
		if err != nil || evs[len(evs)-1].Kind != "batch.failed" || evs[len(evs)-1].Detail["reason"] != "x.csv is not in the manifest" {
			t.Errorf("last event %+v, %v; want batch.failed with the reason", evs[len(evs)-1], err)
		}
		if _, err := l.VerifyAudit(ctx); err != nil {
			t.Errorf("audit verify: %v", err)
		}
	})
}

func TestOpenBatch(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		l := openLedger(t, dsn)
		at := time.Now()
		members := func() []Transfer {
			return []Transfer{queued("cbol", "day/a.csv", 1, at, "etl"), queued("cbol", "day/b/c.csv", 2, at, "etl")}
		}
		flag := Batch{Route: "cbol", Trigger: "day/pipeline_success.flag", TriggerVersion: "0:1"}
		var hooked int
		b, err := l.OpenBatch(ctx, flag, members(), func(context.Context, *sql.Tx, Transfer) error { hooked++; return nil })
		if err != nil || b.Files != 2 || b.Reruns != "" || hooked != 2 {
			t.Fatalf("OpenBatch = %+v, %v (hook ran %d times)", b, err, hooked)
		}
		if _, err := l.OpenBatch(ctx, flag, members(), nil); !errors.Is(err, ErrAdmitted) {
			t.Fatalf("the same flag again = %v; want ErrAdmitted", err)
		}
		again := flag
		again.TriggerVersion = "0:2" // the flag rewritten: a re-run of the same files
		rerun, err := l.OpenBatch(ctx, again, members(), nil)
		if err != nil || rerun.Reruns != b.ID {
			t.Fatalf("re-run = %+v, %v; want reruns %s", rerun, err, b.ID)
		}
		bs, err := l.Batches(ctx, BatchFilter{Route: "cbol"})
		if err != nil || len(bs) != 2 || bs[0].ID != rerun.ID || bs[0].States[Queued] != 2 || bs[0].Complete() {
			t.Fatalf("Batches = %+v, %v", bs, err)
		}
		trs, err := l.List(ctx, Filter{Batch: b.ID})
		if err != nil || len(trs) != 2 || trs[0].Batch != b.ID {
			t.Fatalf("members = %+v, %v", trs, err)
		}
		// Failed once, then delivered once (an operator retried the
		// failed members); a delivered batch fails no more.
		var hookRuns int
		hook := func(context.Context, *sql.Tx) error { hookRuns++; return nil }
		for i, step := range []struct {
			to   string
			want bool
		}{{BatchFailed, true}, {BatchFailed, false}, {BatchDelivered, true}, {BatchDelivered, false}, {BatchFailed, false}} {
			if settled, err := l.SettleBatch(ctx, b.ID, step.to, Event{}, hook); err != nil || settled != step.want {
				t.Errorf("SettleBatch #%d to %s = %v, %v; want %v", i+1, step.to, settled, err, step.want)
			}
		}
		if hookRuns != 2 {
			t.Errorf("the transaction hook ran %d times; want 2 (once per settling)", hookRuns)
		}
		if got, err := l.GetBatch(ctx, b.ID); err != nil || got.State != BatchDelivered || got.SettledAt == nil {
			t.Errorf("GetBatch = %+v, %v; want delivered", got, err)
		}
		if _, err := l.VerifyAudit(ctx); err != nil {
			t.Errorf("audit verify: %v", err)
		}
	})
}
