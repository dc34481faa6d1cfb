package pipeline

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/riverqueue/river"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/storage"
)

// Operator carries out what an operator asks of a transfer from the CLI:
// every action is checked against the transfer's state, audited with the
// operator's name and, where it calls for work, queued in the same
// transaction.
type Operator struct {
	Ledger     *ledger.Ledger
	Queue      *Queue
	Landing    *storage.Store
	Quarantine *storage.Store
	Actor      string // e.g. "operator:alice"
	// Person is who the operator is ("alice"): four eyes are two people.
	Person string
	// Routes looks up a route by name, for its approvals.
	Routes func(name string) (Route, bool)
	// ReleaseApprovals is how many people other than the requester must
	// approve the release of a quarantined file; 0 releases it at once.
	ReleaseApprovals int
}

// Retry sends a failed transfer through the pipeline again.
func (o *Operator) Retry(ctx context.Context, id string) (ledger.Transfer, error) {
	tr, err := o.Ledger.Get(ctx, id)
	if err != nil {
		return ledger.Transfer{}, err
	}
	if tr.State != ledger.Failed {
		return ledger.Transfer{}, fmt.Errorf("retry %s: %w: only a failed transfer can be retried, and it is %s", id, ErrNotAllowed, tr.State)
	}
	if tr.Route != "" {
		return o.retryRoute(ctx, tr)
	}
	if tr.Direction == ledger.Egress {
		return ledger.Transfer{}, fmt.Errorf("retry %s: %w: a download is the supplier's to repeat", id, ErrNotAllowed)
	}
	if tr.SHA256 == "" {
		return ledger.Transfer{}, fmt.Errorf("retry %s: %w: the upload never completed; the supplier must send the file again", id, ErrNotAllowed)
	}
	// A transfer that failed after a release from quarantine has its bytes
	// there; any other, in landing.
	where, err := locate(ctx, o.Landing, o.Quarantine, tr)
	if err != nil {
		return ledger.Transfer{}, fmt.Errorf("retry %s: %w", id, err)
	}
	if where == nowhere {
		return ledger.Transfer{}, fmt.Errorf("retry %s: %w: its bytes are in neither landing nor quarantine", id, ErrNotAllowed)
	}
	args := ingestArgs{TransferID: id, FromQuarantine: where == inQuarantine}
	noError := ""
	return o.Ledger.Advance(ctx, id, []ledger.State{ledger.Failed}, ledger.Received, ledger.Change{
		Error: &noError,
		InTx:  o.queue(args),
	}, ledger.Event{Kind: "transfer.retry", Actor: o.Actor})
}

// retryRoute queues a failed transfer along a route again: it is checked
// from the start, its source hashed again (and held for approval again,
// if its route asks for one).
func (o *Operator) retryRoute(ctx context.Context, tr ledger.Transfer) (ledger.Transfer, error) {
	noError := ""
	return o.Ledger.Advance(ctx, tr.ID, []ledger.State{ledger.Failed}, ledger.Queued, ledger.Change{
		Error: &noError,
		InTx:  o.queue(jobFor(tr)),
	}, ledger.Event{Kind: "transfer.retry", Actor: o.Actor})
}

// Release delivers a quarantined file, rescanning it first unless
// skipScan. reason is required: it goes into the audit log. When
// ReleaseApprovals asks for approvers, it only requests the release, which
// the last of them performs (see approveRelease); the transfer stays
// quarantined meanwhile.
func (o *Operator) Release(ctx context.Context, id, reason string, skipScan bool) (ledger.Transfer, error) {
	tr, err := o.quarantined(ctx, id, reason)
	if err == nil {
		err = o.stillHeld(ctx, tr)
	}
	if err != nil {
		return ledger.Transfer{}, fmt.Errorf("release %s: %w", id, err)
	}
	if o.ReleaseApprovals > 0 {
		return o.Ledger.RequestRelease(ctx, id, o.Person, reason, skipScan, ledger.Event{Actor: o.Actor})
	}
	return o.Ledger.Advance(ctx, id, []ledger.State{ledger.Quarantined}, ledger.Received, ledger.Change{
		InTx: o.queue(ingestArgs{TransferID: id, FromQuarantine: true, SkipScan: skipScan}),
	}, ledger.Event{Kind: "quarantine.release", Actor: o.Actor,
		Detail: map[string]string{"reason": reason, "skip_rescan": fmt.Sprint(skipScan)}})
}

// Delete removes a quarantined file for good; the transfer stays in the
// ledger, quarantined, with no location.
func (o *Operator) Delete(ctx context.Context, id, reason string) (ledger.Transfer, error) {
	tr, err := o.quarantined(ctx, id, reason)
	if err != nil {
		return ledger.Transfer{}, fmt.Errorf("delete %s: %w", id, err)
	}
	// The bytes go first: a ledger that says "deleted" while they remain
	// would be worse than the reverse, which a second delete completes.
	if err := o.Quarantine.Delete(ctx, quarantineKey(tr)); err != nil {
		return ledger.Transfer{}, fmt.Errorf("delete %s: %w", id, err)
	}
	gone, note := "", "deleted from quarantine by "+o.Actor+": "+reason
	return o.Ledger.Advance(ctx, id, []ledger.State{ledger.Quarantined}, ledger.Quarantined,
		ledger.Change{Destination: &gone, Error: &note},
		ledger.Event{Kind: "quarantine.delete", Actor: o.Actor, Detail: map[string]string{"reason": reason}})
}

func (o *Operator) quarantined(ctx context.Context, id, reason string) (ledger.Transfer, error) {
	if reason == "" {
		return ledger.Transfer{}, errors.New("a reason is required: it is kept in the audit log")
	}
	tr, err := o.Ledger.Get(ctx, id)
	if err != nil {
		return ledger.Transfer{}, err
	}
	if tr.State != ledger.Quarantined {
		return ledger.Transfer{}, fmt.Errorf("%w: the transfer is %s, not quarantined", ErrNotAllowed, tr.State)
	}
	if tr.Destination == "" {
		return ledger.Transfer{}, fmt.Errorf("%w: the quarantined file was deleted", ErrNotAllowed)
	}
	return tr, nil
}

func (o *Operator) queue(args river.JobArgs) func(context.Context, *sql.Tx, ledger.Transfer) error {
	return func(ctx context.Context, tx *sql.Tx, _ ledger.Transfer) error {
		return insert(ctx, o.Queue.client, tx, args)
	}
}

// Approve records the operator's approval of a transfer held for it, or
// of the release requested of a quarantined one; the approval that
// completes the route's count sends the transfer on. The
// writer of the file cannot approve it. A member of a batch is approved
// with its batch (ApproveBatch).
func (o *Operator) Approve(ctx context.Context, id string) (ledger.Transfer, int, error) {
	if q, err := o.Ledger.Get(ctx, id); err == nil && q.State == ledger.Quarantined {
		return o.approveRelease(ctx, q)
	}
	tr, route, err := o.held(ctx, id)
	if err == nil && tr.Batch != "" {
		err = fmt.Errorf("%w: it belongs to batch %s, which is approved whole (approvals approve --batch %s)", ErrNotAllowed, tr.Batch, tr.Batch)
	}
	if err != nil {
		return ledger.Transfer{}, 0, fmt.Errorf("approve %s: %w", id, err)
	}
	return o.Ledger.Approve(ctx, id, o.Person, route.Approval, ledger.Change{InTx: o.queue(jobFor(tr))},
		ledger.Event{Actor: o.Actor})
}

// ApproveBatch records the operator's approval of every member of a
// batch at once, when all of them are checked and held: the approval
// that completes the route's count sends them all on. It returns the
// members and how many people have approved the batch.
func (o *Operator) ApproveBatch(ctx context.Context, id string) ([]ledger.Transfer, int, error) {
	b, err := o.Ledger.GetBatch(ctx, id)
	if err != nil {
		return nil, 0, fmt.Errorf("approve batch %s: %w", id, err)
	}
	route, ok := o.Routes(b.Route)
	switch {
	case !ok:
		return nil, 0, fmt.Errorf("approve batch %s: %w: route %s is no longer configured", id, ErrNotAllowed, b.Route)
	case route.Approval == 0:
		return nil, 0, fmt.Errorf("approve batch %s: %w: route %s asks for no approval", id, ErrNotAllowed, b.Route)
	}
	queue := func(ctx context.Context, tx *sql.Tx, tr ledger.Transfer) error {
		return insert(ctx, o.Queue.client, tx, jobFor(tr))
	}
	return o.Ledger.ApproveBatch(ctx, id, o.Person, route.Approval, ledger.Change{InTx: queue}, ledger.Event{Actor: o.Actor})
}

// Reject refuses a transfer held for approval, or the release requested
// of a quarantined one: nothing is sent and nothing deleted. reason is required: it goes into the audit log.
func (o *Operator) Reject(ctx context.Context, id, reason string) (ledger.Transfer, error) {
	if reason == "" {
		return ledger.Transfer{}, errors.New("a reason is required: it is kept in the audit log")
	}
	if q, err := o.Ledger.Get(ctx, id); err == nil && q.State == ledger.Quarantined {
		return o.Ledger.RejectRelease(ctx, id, reason, ledger.Event{Actor: o.Actor})
	}
	if _, _, err := o.held(ctx, id); err != nil {
		return ledger.Transfer{}, fmt.Errorf("reject %s: %w", id, err)
	}
	note := "rejected by " + o.Actor + ": " + reason
	return o.Ledger.Advance(ctx, id, []ledger.State{ledger.AwaitingApproval}, ledger.Rejected,
		ledger.Change{Error: &note, InTx: batchBroken(o.Queue.client)},
		ledger.Event{Kind: "approval.rejected", Actor: o.Actor, Detail: map[string]string{"reason": reason}})
}

// held returns transfer id, which must await approval, and its route.
func (o *Operator) held(ctx context.Context, id string) (ledger.Transfer, Route, error) {
	tr, err := o.Ledger.Get(ctx, id)
	if err != nil {
		return ledger.Transfer{}, Route{}, err
	}
	if tr.State != ledger.AwaitingApproval {
		return ledger.Transfer{}, Route{}, fmt.Errorf("%w: the transfer is %s, not %s", ErrNotAllowed, tr.State, ledger.AwaitingApproval)
	}
	route, ok := o.Routes(tr.Route)
	if !ok {
		return ledger.Transfer{}, Route{}, fmt.Errorf("%w: route %s is no longer configured", ErrNotAllowed, tr.Route)
	}
	return tr, route, nil
}
