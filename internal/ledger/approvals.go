package ledger

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"strconv"
)

var (
	// ErrOwnApproval means the person approving wrote the file: four eyes
	// means two people.
	ErrOwnApproval = errors.New("the writer of a file cannot approve it")
	// ErrApprovedBefore means the person has approved the transfer already.
	ErrApprovedBefore = errors.New("already approved by this person")
)

// Approve records approver's approval of transfer id, held in
// AwaitingApproval, and appends ev (kind "approval.granted" unless set;
// actor the approver unless set). When need distinct people other than
// its writer (the transfer's Supplier) have approved it, the transfer
// moves on to Delivering with ch applied, in the same transaction, and ev
// also names the move. It returns the transfer and how many have approved
// it. Concurrent approvals take turns on the chain head's lock, so exactly
// one of them completes the count.
func (l *Ledger) Approve(ctx context.Context, id, approver string, need int, ch Change, ev Event) (Transfer, int, error) {
	if approver == "" {
		return Transfer{}, 0, fmt.Errorf("approve %s: approver is required", id)
	}
	ev.Kind = cmp.Or(ev.Kind, "approval.granted")
	ev.Actor = cmp.Or(ev.Actor, approver)
	var t Transfer
	var n int
	err := l.withEvent(ctx, durable, &ev, func(tx *sql.Tx) error {
		var err error
		t, n, err = l.approveIn(ctx, tx, id, approver, need, ch, &ev)
		return err
	})
	if err != nil {
		return Transfer{}, 0, fmt.Errorf("approve transfer %s: %w", id, err)
	}
	return t, n, nil
}

// ApproveBatch is Approve for every member of a batch at once, in one
// transaction with one event per member: the batch is approved whole or
// not at all. Every member must be awaiting approval (checked, not yet
// sent, not failed), so that what is approved is all the batch will send,
// and approver must have written none of them. It returns the members and
// how many have approved the batch.
func (l *Ledger) ApproveBatch(ctx context.Context, batch, approver string, need int, ch Change, ev Event) ([]Transfer, int, error) {
	if approver == "" {
		return nil, 0, fmt.Errorf("approve batch %s: approver is required", batch)
	}
	members, err := l.List(ctx, Filter{Batch: batch})
	if err == nil && len(members) == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("approve batch %s: %w", batch, err)
	}
	evs := make([]*Event, len(members))
	for i := range members {
		e := ev
		e.Kind, e.Actor = cmp.Or(e.Kind, "approval.granted"), cmp.Or(e.Actor, approver)
		e.Detail = maps.Clone(ev.Detail)
		if e.Detail == nil {
			e.Detail = map[string]string{}
		}
		e.Detail["batch"] = batch
		evs[i] = &e
	}
	var n int
	err = l.withEvents(ctx, durable, evs, func(tx *sql.Tx) error {
		for i, m := range members {
			var err error
			if members[i], n, err = l.approveIn(ctx, tx, m.ID, approver, need, ch, evs[i]); err != nil {
				return fmt.Errorf("%s (%s): %w", m.ID, m.Path, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("approve batch %s: %w", batch, err)
	}
	return members, n, nil
}

// approveIn records approver's approval of transfer id in tx and, when
// it completes the count, moves the transfer on to Delivering with ch
// applied; ev is the approval's event.
func (l *Ledger) approveIn(ctx context.Context, tx *sql.Tx, id, approver string, need int, ch Change, ev *Event) (Transfer, int, error) {
	ev.TransferID, ev.At = id, now()
	t, err := l.getTransfer(ctx, tx, id)
	if err != nil {
		return Transfer{}, 0, err
	}
	n, err := recordApproval(ctx, tx, t, approver)
	if err != nil {
		return Transfer{}, 0, err
	}
	ev.Detail = maps.Clone(ev.Detail)
	if ev.Detail == nil {
		ev.Detail = map[string]string{}
	}
	ev.Detail["approvals"], ev.Detail["needed"] = strconv.Itoa(n), strconv.Itoa(need)
	if n < need {
		return t, n, nil
	}
	move(&t, Delivering, ch, ev)
	anchorRow(ev, t)
	if _, err := tx.ExecContext(ctx, sqlUpdateTransfer, t.Size, t.SHA256, string(t.State), t.ScanResult,
		t.Destination, t.Error, t.Attempts, formatTime(t.UpdatedAt), t.ID); err != nil || ch.InTx == nil {
		return t, n, err
	}
	return t, n, ch.InTx(ctx, tx, t)
}

// recordApproval adds approver's row and returns how many have approved t.
func recordApproval(ctx context.Context, tx *sql.Tx, t Transfer, approver string) (int, error) {
	switch {
	case t.State != AwaitingApproval:
		return 0, fmt.Errorf("%w: state is %s, not %s", ErrStateConflict, t.State, AwaitingApproval)
	case approver == t.Supplier:
		return 0, ErrOwnApproval
	}
	return addApproval(ctx, tx, "approvals", t.ID, approver)
}

// addApproval adds approver's row to table (approvals, release_approvals:
// one row per transfer and person) and returns how many have approved
// transfer id; a second by one person is ErrApprovedBefore.
func addApproval(ctx context.Context, tx *sql.Tx, table, id, approver string) (int, error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO `+table+` (transfer_id, approver, approved_at) VALUES ($1, $2, $3)
		ON CONFLICT (transfer_id, approver) DO NOTHING`, id, approver, formatTime(now()))
	if err != nil {
		return 0, err
	}
	if added, err := res.RowsAffected(); err != nil || added == 0 {
		return 0, cmp.Or(err, ErrApprovedBefore)
	}
	var n int
	err = tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table+` WHERE transfer_id = $1`, id).Scan(&n)
	return n, err
}

// Approvers returns who has approved transfer id, in the order they did.
func (l *Ledger) Approvers(ctx context.Context, id string) ([]string, error) {
	rows, err := l.reads.QueryContext(ctx, `SELECT approver FROM approvals WHERE transfer_id = $1
		ORDER BY approved_at, approver`, id)
	if err != nil {
		return nil, fmt.Errorf("list approvals of %s: %w", id, err)
	}
	defer rows.Close()
	var who []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, fmt.Errorf("list approvals of %s: %w", id, err)
		}
		who = append(who, a)
	}
	return who, rows.Err()
}
