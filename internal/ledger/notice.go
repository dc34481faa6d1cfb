package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// errNoticeRecorded rolls back RecordNotice's transaction when the notice
// was recorded before, so that the audit chain is left untouched.
var errNoticeRecorded = errors.New("notice already recorded")

// RecordNotice records that the notice id was sent and, only the first
// time, appends ev (At set here; Kind is required) to the audit chain in
// the same transaction. first is false when id was recorded before, by
// this node or another; nothing changes then.
func (l *Ledger) RecordNotice(ctx context.Context, id string, ev Event) (first bool, err error) {
	if id == "" {
		return false, errors.New("record notice: id is required")
	}
	ev.At = now()
	// withEvent's first statement takes the audit head's lock, as every
	// writer's does; the insert then runs in its turn.
	err = l.withEvent(ctx, relaxed, &ev, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO notices (id, sent_at) VALUES ($1, $2)
			ON CONFLICT (id) DO NOTHING`, id, formatTime(ev.At))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return errNoticeRecorded
		}
		return nil
	})
	switch {
	case errors.Is(err, errNoticeRecorded):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("record notice %s: %w", id, err)
	}
	return true, nil
}

// NoticeSent reports whether the notice id has been recorded.
func (l *Ledger) NoticeSent(ctx context.Context, id string) (bool, error) {
	var n int
	if err := l.reads.QueryRowContext(ctx, `SELECT COUNT(*) FROM notices WHERE id = $1`, id).Scan(&n); err != nil {
		return false, fmt.Errorf("look up notice %s: %w", id, err)
	}
	return n > 0, nil
}
