package ledger

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"maps"
	"time"
)

// A supplier's client may annotate its upload after sending it, in any
// state: set its modification time, or hide it from its listing. Neither
// changes the transfer's state or updated_at, and neither is recorded
// twice: an annotation the row already holds writes nothing and appends no
// event, so that a client repeating it cannot flood the audit.

// SetMTime records mtime as the modification time of transfer id, with ev
// (kind "upload.mtime" unless set) in one transaction. changed reports
// whether anything was recorded.
func (l *Ledger) SetMTime(ctx context.Context, id string, mtime time.Time, ev Event) (t Transfer, changed bool, err error) {
	mtime = mtime.UTC().Truncate(time.Microsecond) // as stored
	ev.Kind = cmp.Or(ev.Kind, "upload.mtime")
	t, changed, err = l.annotate(ctx, id, ev, map[string]string{"mtime": formatTime(mtime)}, `UPDATE transfers SET mtime = $1 WHERE id = $2`,
		func(t *Transfer) (any, bool) {
			if t.MTime != nil && t.MTime.Equal(mtime) {
				return nil, false
			}
			t.MTime = &mtime
			return storedTime(t.MTime), true
		})
	if err != nil {
		return Transfer{}, false, fmt.Errorf("set mtime of transfer %s: %w", id, err)
	}
	return t, changed, nil
}

// Hide records that the supplier removed transfer id from its listing,
// with ev (kind "upload.hide" unless set) in one transaction. A transfer
// hidden already is left as it is: changed reports whether it was not.
func (l *Ledger) Hide(ctx context.Context, id string, ev Event) (t Transfer, changed bool, err error) {
	at := now()
	ev.Kind = cmp.Or(ev.Kind, "upload.hide")
	t, changed, err = l.annotate(ctx, id, ev, nil, `UPDATE transfers SET hidden_at = $1 WHERE id = $2`,
		func(t *Transfer) (any, bool) {
			if t.HiddenAt != nil {
				return nil, false
			}
			t.HiddenAt = &at
			return storedTime(t.HiddenAt), true
		})
	if err != nil {
		return Transfer{}, false, fmt.Errorf("hide transfer %s: %w", id, err)
	}
	return t, changed, nil
}

// annotate applies change to transfer id and, if it changed the row, runs
// update with $1 the value change returns (the column as stored) and $2
// the id, and appends ev with detail and the row's digest, in one
// transaction.
func (l *Ledger) annotate(ctx context.Context, id string, ev Event, detail map[string]string, update string,
	change func(*Transfer) (stored any, changed bool)) (Transfer, bool, error) {
	// The unchanged case is the one to make cheap: one read, no write.
	t, err := l.getTransfer(ctx, nil, id)
	if err != nil {
		return Transfer{}, false, err
	}
	probe := t
	if _, ok := change(&probe); !ok {
		return t, false, nil
	}
	ev.TransferID, ev.At = id, now()
	ev.Detail = maps.Clone(ev.Detail)
	if ev.Detail == nil {
		ev.Detail = map[string]string{}
	}
	maps.Copy(ev.Detail, detail)
	changed := false
	err = l.withEvent(ctx, relaxed, &ev, func(tx *sql.Tx) error {
		// withEvent holds the chain head lock: the row cannot change
		// between this read and the update.
		var err error
		if t, err = l.getTransfer(ctx, tx, id); err != nil {
			return err
		}
		var value any
		value, changed = change(&t)
		anchorRow(&ev, t) // annotated meanwhile, the event still records the request
		if !changed {
			return nil
		}
		_, err = tx.ExecContext(ctx, update, value, id)
		return err
	})
	return t, changed, err
}
