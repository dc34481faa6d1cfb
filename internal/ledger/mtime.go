package ledger

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"maps"
	"time"
)

// SetMTime records mtime as the modification time of transfer id, in any
// state, with ev (kind "upload.mtime" unless set) in one transaction: the
// time a supplier's client set on its upload, which its listings show. The
// transfer's state and updated_at are left as they are. Setting the time
// the row holds already writes nothing and appends no event, so that a
// client setting it again and again cannot flood the audit: changed reports
// whether anything was recorded.
func (l *Ledger) SetMTime(ctx context.Context, id string, mtime time.Time, ev Event) (t Transfer, changed bool, err error) {
	mtime = mtime.UTC().Truncate(time.Microsecond) // as stored
	ev.Kind, ev.TransferID, ev.At = cmp.Or(ev.Kind, "upload.mtime"), id, now()
	ev.Detail = maps.Clone(ev.Detail)
	if ev.Detail == nil {
		ev.Detail = map[string]string{}
	}
	ev.Detail["mtime"] = formatTime(mtime)
	// The unchanged case is the one to make cheap: one read, no write.
	if t, err = l.getTransfer(ctx, nil, id); err != nil {
		return Transfer{}, false, fmt.Errorf("set mtime of transfer %s: %w", id, err)
	}
	if t.MTime != nil && t.MTime.Equal(mtime) {
		return t, false, nil
	}
	err = l.withEvent(ctx, relaxed, &ev, func(tx *sql.Tx) error {
		// withEvent holds the chain head lock: the row cannot change
		// between this read and the update.
		var err error
		if t, err = l.getTransfer(ctx, tx, id); err != nil {
			return err
		}
		t.MTime = &mtime
		anchorRow(&ev, t)
		_, err = tx.ExecContext(ctx, `UPDATE transfers SET mtime = $1 WHERE id = $2`, formatTime(mtime), id)
		return err
	})
	if err != nil {
		return Transfer{}, false, fmt.Errorf("set mtime of transfer %s: %w", id, err)
	}
	return t, true, nil
}
