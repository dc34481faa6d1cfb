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

// quarantinedTransfer admits a transfer written by ann and quarantines it.
func quarantinedTransfer(t *testing.T, l *Ledger) Transfer {
	t.Helper()
	tr, err := l.Admit(t.Context(), queued("proj", "proj/x", 1, time.Now(), "ann"), Event{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	where := "quarantine/x"
	if tr, err = l.Advance(t.Context(), tr.ID, []State{Queued}, Quarantined, Change{Destination: &where}, Event{}); err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestReleaseRequest: a release waits for need approvers other than the
// requester and the writer, and the last of them releases the file once.
func TestReleaseRequest(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		l := openLedger(t, dsn)
		tr := quarantinedTransfer(t, l)
		if _, _, err := l.ApproveRelease(ctx, tr.ID, "bob", 2, nil, Event{}); !errors.Is(err, ErrNoRelease) {
			t.Fatalf("approval with no request = %v; want ErrNoRelease", err)
		}
		if _, err := l.RequestRelease(ctx, tr.ID, "req", "false positive", true, Event{}); err != nil {
			t.Fatal(err)
		}
		if _, err := l.RequestRelease(ctx, tr.ID, "bob", "again", false, Event{}); !errors.Is(err, ErrReleasePending) {
			t.Fatalf("second request = %v; want ErrReleasePending", err)
		}
		for who, want := range map[string]error{"req": ErrOwnRequest, "ann": ErrOwnApproval} {
			if _, _, err := l.ApproveRelease(ctx, tr.ID, who, 2, nil, Event{}); !errors.Is(err, want) {
				t.Fatalf("%s's approval = %v; want %v", who, err, want)
			}
		}
		got, n, err := l.ApproveRelease(ctx, tr.ID, "bob", 2, nil, Event{})
		if err != nil || n != 1 || got.State != Quarantined {
			t.Fatalf("bob's approval = %s, %d, %v; want quarantined, 1", got.State, n, err)
		}
		if _, _, err := l.ApproveRelease(ctx, tr.ID, "bob", 2, nil, Event{}); !errors.Is(err, ErrApprovedBefore) {
			t.Fatalf("bob again = %v; want ErrApprovedBefore", err)
		}
		reqs, err := l.ReleaseRequests(ctx)
		if err != nil || len(reqs) != 1 || reqs[0].Requester != "req" || !reqs[0].SkipRescan || strings.Join(reqs[0].Approvers, ",") != "bob" {
			t.Fatalf("ReleaseRequests = %+v, %v; want req's, approved by bob", reqs, err)
		}
		var hooked ReleaseRequest
		got, n, err = l.ApproveRelease(ctx, tr.ID, "cat", 2, func(_ context.Context, _ *sql.Tx, tr Transfer, r ReleaseRequest) error {
			hooked = r
			return nil
		}, Event{})
		if err != nil || n != 2 || got.State != Received || hooked.Reason != "false positive" || !hooked.SkipRescan {
			t.Fatalf("cat's approval = %s, %d, %v (hook saw %+v); want received, 2, hooked", got.State, n, err, hooked)
		}
		if reqs, err := l.ReleaseRequests(ctx); err != nil || len(reqs) != 0 {
			t.Errorf("requests after the release = %+v, %v; want none", reqs, err)
		}
		evs, err := l.Events(ctx, tr.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, e := range evs {
			kinds = append(kinds, e.Kind)
		}
		want := "quarantine.release_requested,approval.granted,approval.granted,quarantine.release"
		if got := strings.Join(kinds[2:], ","); got != want {
			t.Errorf("events = %s; want %s after admission and quarantine", got, want)
		}
		if _, err := l.VerifyAudit(ctx); err != nil {
			t.Errorf("audit verify: %v", err)
		}
	})
}

// TestRejectRelease: a rejection drops the request and its approvals; the
// file stays quarantined and may be requested again.
func TestRejectRelease(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		l := openLedger(t, dsn)
		tr := quarantinedTransfer(t, l)
		if _, err := l.RejectRelease(ctx, tr.ID, "no", Event{Actor: "bob"}); !errors.Is(err, ErrNoRelease) {
			t.Fatalf("reject with no request = %v; want ErrNoRelease", err)
		}
		if _, err := l.RequestRelease(ctx, tr.ID, "req", "why", false, Event{}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := l.ApproveRelease(ctx, tr.ID, "bob", 2, nil, Event{}); err != nil {
			t.Fatal(err)
		}
		got, err := l.RejectRelease(ctx, tr.ID, "it is malware", Event{Actor: "cat"})
		if err != nil || got.State != Quarantined {
			t.Fatalf("reject = %s, %v; want quarantined", got.State, err)
		}
		if _, err := l.RequestRelease(ctx, tr.ID, "req", "why", false, Event{}); err != nil {
			t.Fatalf("a new request after the rejection: %v", err)
		}
		if reqs, err := l.ReleaseRequests(ctx); err != nil || len(reqs) != 1 || len(reqs[0].Approvers) != 0 {
			t.Errorf("requests = %+v, %v; want one, with bob's old approval gone", reqs, err)
		}
		// Deleted from quarantine: the request is no longer listed, nor
		// can it be approved.
		gone := ""
		if _, err := l.Advance(ctx, tr.ID, []State{Quarantined}, Quarantined, Change{Destination: &gone}, Event{Kind: "quarantine.delete"}); err != nil {
			t.Fatal(err)
		}
		if reqs, err := l.ReleaseRequests(ctx); err != nil || len(reqs) != 0 {
			t.Errorf("requests after the delete = %+v, %v; want none", reqs, err)
		}
		if _, _, err := l.ApproveRelease(ctx, tr.ID, "bob", 1, nil, Event{}); !errors.Is(err, ErrStateConflict) {
			t.Errorf("approval after the delete = %v; want ErrStateConflict", err)
		}
		if _, err := l.VerifyAudit(ctx); err != nil {
			t.Errorf("audit verify: %v", err)
		}
	})
}

// TestApproveReleaseConcurrently: approvals that all complete the count
// release the file once.
func TestApproveReleaseConcurrently(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		approveReleaseConcurrently(t, openLedger(t, dsn))
	})
}

func approveReleaseConcurrently(t *testing.T, l *Ledger) {
	ctx := t.Context()
	tr := quarantinedTransfer(t, l)
	if _, err := l.RequestRelease(ctx, tr.ID, "req", "why", false, Event{}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	released := 0
	var wg sync.WaitGroup
	for _, who := range []string{"bob", "cat", "dan"} {
		wg.Go(func() {
			_, _, err := l.ApproveRelease(ctx, tr.ID, who, 1, func(context.Context, *sql.Tx, Transfer, ReleaseRequest) error {
				mu.Lock()
				released++
				mu.Unlock()
				return nil
			}, Event{})
			if err != nil && !errors.Is(err, ErrStateConflict) {
				t.Errorf("%s: %v", who, err)
			}
		})
	}
	wg.Wait()
	if released != 1 {
		t.Errorf("the file was released %d times; want once", released)
	}
	if _, err := l.VerifyAudit(ctx); err != nil {
		t.Errorf("audit verify: %v", err)
	}
}
