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
	ev.TransferID, ev.At = id, now()
	var t Transfer
	var n int
	err := l.withEvent(ctx, durable, &ev, func(tx *sql.Tx) error {
		var err error
		if t, err = l.getTransfer(ctx, tx, id); err != nil {
			return err
		}
		if n, err = recordApproval(ctx, tx, t, approver); err != nil {
			return err
		}
		ev.Detail = maps.Clone(ev.Detail)
		if ev.Detail == nil {
			ev.Detail = map[string]string{}
		}
		ev.Detail["approvals"], ev.Detail["needed"] = strconv.Itoa(n), strconv.Itoa(need)
		if n < need {
			return nil
		}
		move(&t, Delivering, ch, &ev)
		anchorRow(&ev, t)
		if _, err := tx.ExecContext(ctx, sqlUpdateTransfer, t.Size, t.SHA256, string(t.State), t.ScanResult,
			t.Destination, t.Error, t.Attempts, formatTime(t.UpdatedAt), t.ID); err != nil || ch.InTx == nil {
			return err
		}
		return ch.InTx(ctx, tx, t)
	})
	if err != nil {
		return Transfer{}, 0, fmt.Errorf("approve transfer %s: %w", id, err)
	}
	return t, n, nil
}

// recordApproval adds approver's row and returns how many have approved t.
func recordApproval(ctx context.Context, tx *sql.Tx, t Transfer, approver string) (int, error) {
	switch {
	case t.State != AwaitingApproval:
		return 0, fmt.Errorf("%w: state is %s, not %s", ErrStateConflict, t.State, AwaitingApproval)
	case approver == t.Supplier:
		return 0, ErrOwnApproval
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO approvals (transfer_id, approver, approved_at) VALUES ($1, $2, $3)
		ON CONFLICT (transfer_id, approver) DO NOTHING`, t.ID, approver, formatTime(now()))
	if err != nil {
		return 0, err
	}
	if added, err := res.RowsAffected(); err != nil || added == 0 {
		return 0, cmp.Or(err, ErrApprovedBefore)
	}
	var n int
	err = tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM approvals WHERE transfer_id = $1`, t.ID).Scan(&n)
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
