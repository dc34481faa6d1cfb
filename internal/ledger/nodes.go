package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Heartbeat records that node is alive now, by its own clock.
func (l *Ledger) Heartbeat(ctx context.Context, node string) error {
	err := l.inTx(ctx, relaxed, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO nodes (name, seen_at) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET seen_at = excluded.seen_at`, node, formatTime(now()))
		return err
	})
	if err != nil {
		return fmt.Errorf("record heartbeat of node %s: %w", node, err)
	}
	return nil
}

// NodesSeen returns when each node that ever recorded a heartbeat last
// did.
func (l *Ledger) NodesSeen(ctx context.Context) (map[string]time.Time, error) {
	rows, err := l.reads.QueryContext(ctx, `SELECT name, seen_at FROM nodes`)
	if err != nil {
		return nil, fmt.Errorf("list node heartbeats: %w", err)
	}
	defer rows.Close()
	seen := make(map[string]time.Time)
	for rows.Next() {
		var name, at string
		if err := rows.Scan(&name, &at); err != nil {
			return nil, fmt.Errorf("list node heartbeats: %w", err)
		}
		if seen[name], err = parseTime(at); err != nil {
			return nil, fmt.Errorf("list node heartbeats: node %s: %w", name, err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list node heartbeats: %w", err)
	}
	return seen, nil
}

// ForgetNodes deletes the heartbeats of the nodes last seen before t, and
// returns how many. Every restart of a node named after its host (a pod)
// may bring a new name, whose row would otherwise stay for good.
func (l *Ledger) ForgetNodes(ctx context.Context, t time.Time) (int64, error) {
	var n int64
	err := l.inTx(ctx, relaxed, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM nodes WHERE seen_at < $1`, formatTime(t))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("forget silent nodes: %w", err)
	}
	return n, nil
}
