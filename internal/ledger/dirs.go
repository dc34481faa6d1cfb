package ledger

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
)

// MakeDir records that supplier made directory p, with its audit event
// (kind "dir.create" unless set), in one transaction. Making a directory
// that is already recorded changes nothing but appends the event.
func (l *Ledger) MakeDir(ctx context.Context, supplier, p string, ev Event) error {
	ev.Kind, ev.At = cmp.Or(ev.Kind, "dir.create"), now()
	err := l.withEvent(ctx, relaxed, &ev, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO directories (supplier, path, created_at) VALUES ($1, $2, $3)
			ON CONFLICT (supplier, path) DO NOTHING`, supplier, p, formatTime(ev.At))
		return err
	})
	if err != nil {
		return fmt.Errorf("make directory %s of %s: %w", p, supplier, err)
	}
	return nil
}

// RemoveDir forgets directory p of supplier, with its audit event (kind
// "dir.remove" unless set), in one transaction.
func (l *Ledger) RemoveDir(ctx context.Context, supplier, p string, ev Event) error {
	ev.Kind, ev.At = cmp.Or(ev.Kind, "dir.remove"), now()
	err := l.withEvent(ctx, relaxed, &ev, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM directories WHERE supplier = $1 AND path = $2`, supplier, p)
		return err
	})
	if err != nil {
		return fmt.Errorf("remove directory %s of %s: %w", p, supplier, err)
	}
	return nil
}

// Dirs returns the directories supplier made that are recorded, in path
// order, at most limit of them (limit > 0).
func (l *Ledger) Dirs(ctx context.Context, supplier string, limit int) ([]string, error) {
	rows, err := l.reads.QueryContext(ctx, `SELECT path FROM directories WHERE supplier = $1 ORDER BY path LIMIT $2`, supplier, limit)
	if err != nil {
		return nil, fmt.Errorf("list directories of %s: %w", supplier, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("list directories of %s: %w", supplier, err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list directories of %s: %w", supplier, err)
	}
	return out, nil
}
