package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
)

// ErrAdmitted means the route admitted that version of its source object
// before: its transfer exists, whatever became of it.
var ErrAdmitted = errors.New("object already admitted")

// Admit records t, made by NewTransfer in state Queued, as a transfer along
// its route, unless the route has a transfer of the same version of the
// source object already: the same key (LandingKey), size and MTime. Then
// it returns ErrAdmitted and changes nothing, so that a source seen again
// (a re-poll, a duplicate event, another node, a restart) never sends an
// object twice. ev (kind "transfer.queued" unless set) is appended, and
// inTx (when set) run, in the same transaction.
func (l *Ledger) Admit(ctx context.Context, t Transfer, ev Event, inTx func(context.Context, *sql.Tx, Transfer) error) (Transfer, error) {
	if err := checkAdmit(t); err != nil {
		return Transfer{}, fmt.Errorf("admit transfer: %w", err)
	}
	if ev.Kind == "" {
		ev.Kind = "transfer." + string(Queued)
	}
	startEvent(t, &ev)
	ev.Detail = maps.Clone(ev.Detail)
	anchorRow(&ev, t)
	// Relaxed: an admission a crash undoes leaves its object in the source,
	// where the next poll finds it again.
	err := l.withEvent(ctx, relaxed, &ev, func(tx *sql.Tx) error {
		// withEvent holds the chain head lock, which every writer takes
		// first: no other admission runs between this read and the insert.
		var n int
		err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM transfers
			WHERE route = $1 AND landing_key = $2 AND size = $3 AND mtime = $4`,
			t.Route, t.LandingKey, t.Size, storedTime(t.MTime)).Scan(&n)
		switch {
		case err != nil:
			return err
		case n > 0:
			return ErrAdmitted
		}
		if err := insertTransfer(ctx, tx, t); err != nil || inTx == nil {
			return err
		}
		return inTx(ctx, tx, t)
	})
	if err != nil {
		return Transfer{}, fmt.Errorf("admit %s of route %s: %w", t.LandingKey, t.Route, err)
	}
	return t, nil
}

func checkAdmit(t Transfer) error {
	if err := checkNew(t); err != nil {
		return err
	}
	switch {
	case t.State != Queued:
		return errors.New("an admitted transfer starts queued")
	case t.Route == "" || t.LandingKey == "" || t.MTime == nil:
		return errors.New("route, source key and mtime are required")
	}
	return nil
}
