package ledger

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Search narrows List for people looking for transfers (the console):
// zero fields select everything.
type Search struct {
	SHA256 string
	// NameContains selects the transfers whose path holds it, with case
	// as written.
	NameContains string
	// CreatedFrom and CreatedBefore bound when the transfers began.
	CreatedFrom, CreatedBefore time.Time
	// After pages on: only the transfers List orders after this one.
	After *Cursor
}

// Cursor is a place in List's order (newest first).
type Cursor struct {
	CreatedAt time.Time
	ID        string
}

// CursorOf is the cursor just after t.
func CursorOf(t Transfer) Cursor { return Cursor{CreatedAt: t.CreatedAt, ID: t.ID} }

// where returns the conditions of s; arg adds a parameter.
func (s Search) where(arg func(any) string, postgres bool) []string {
	var where []string
	if s.SHA256 != "" {
		where = append(where, "sha256 = "+arg(s.SHA256))
	}
	if s.NameContains != "" {
		// Not LIKE: its wildcards would need escaping, and SQLite's folds case.
		if postgres {
			where = append(where, "strpos(path, "+arg(s.NameContains)+") > 0")
		} else {
			where = append(where, "instr(path, "+arg(s.NameContains)+") > 0")
		}
	}
	if !s.CreatedFrom.IsZero() {
		where = append(where, "created_at >= "+arg(formatTime(s.CreatedFrom)))
	}
	if !s.CreatedBefore.IsZero() {
		where = append(where, "created_at < "+arg(formatTime(s.CreatedBefore)))
	}
	if c := s.After; c != nil {
		at := arg(formatTime(c.CreatedAt))
		where = append(where, "(created_at < "+at+" OR (created_at = "+at+" AND id < "+arg(c.ID)+"))")
	}
	return where
}

// Count is how many transfers one way are in one state.
type Count struct {
	Direction Direction `json:"direction"`
	State     State     `json:"state"`
	Transfers int       `json:"transfers"`
	Bytes     int64     `json:"bytes"`
}

// Counts counts the transfers begun since a time by direction and state.
func (l *Ledger) Counts(ctx context.Context, since time.Time) ([]Count, error) {
	rows, err := l.reads.QueryContext(ctx, `SELECT direction, state, COUNT(*), COALESCE(SUM(size), 0)
		FROM transfers WHERE created_at >= $1 GROUP BY direction, state ORDER BY direction, state`, formatTime(since))
	if err != nil {
		return nil, fmt.Errorf("count transfers: %w", err)
	}
	defer rows.Close()
	var cs []Count
	for rows.Next() {
		var c Count
		if err := rows.Scan(&c.Direction, &c.State, &c.Transfers, &c.Bytes); err != nil {
			return nil, fmt.Errorf("count transfers: %w", err)
		}
		cs = append(cs, c)
	}
	return cs, rows.Err()
}

// EventsAfter returns up to limit audit events after seq, at or after
// since (when set), in ascending seq. Appends take turns on the chain head
// and commit in seq order, so a reader that goes on from the last seq it
// saw never misses one.
func (l *Ledger) EventsAfter(ctx context.Context, seq int64, since time.Time, limit int) ([]Event, error) {
	query := `SELECT ` + eventColumns + ` FROM audit_events WHERE seq > $1`
	args := []any{seq}
	if !since.IsZero() {
		args = append(args, formatTime(since))
		query += ` AND at >= $2`
	}
	args = append(args, limit)
	query += fmt.Sprintf(` ORDER BY seq LIMIT $%d`, len(args))
	rows, err := l.eventRows(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit events after %d: %w", seq, err)
	}
	evs := make([]Event, len(rows))
	for i, r := range rows {
		if evs[i], err = r.event(); err != nil {
			return nil, fmt.Errorf("list audit events after %d: %w", seq, err)
		}
	}
	return evs, nil
}

// EventFilter selects audit events for SearchEvents; zero fields select
// everything.
type EventFilter struct {
	Kind       string // kinds starting with it ("approval." is every approval event)
	Actor      string // the actor exactly
	TransferID string
	Before     int64 // only events before this seq (a page's cursor)
	Limit      int
}

// SearchEvents returns the audit events f selects, newest first.
func (l *Ledger) SearchEvents(ctx context.Context, f EventFilter) ([]Event, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Kind != "" {
		col := "kind"
		if l.postgres {
			col = `kind COLLATE "C"`
		}
		where = append(where, col+" >= "+arg(f.Kind))
		if upper, ok := prefixUpperBound(f.Kind); ok {
			where = append(where, col+" < "+arg(upper))
		}
	}
	if f.Actor != "" {
		where = append(where, "actor = "+arg(f.Actor))
	}
	if f.TransferID != "" {
		where = append(where, "transfer_id = "+arg(f.TransferID))
	}
	if f.Before > 0 {
		where = append(where, "seq < "+arg(f.Before))
	}
	query := `SELECT ` + eventColumns + ` FROM audit_events`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY seq DESC"
	if f.Limit > 0 {
		query += " LIMIT " + arg(f.Limit)
	}
	rows, err := l.eventRows(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("search audit events: %w", err)
	}
	evs := make([]Event, len(rows))
	for i, r := range rows {
		if evs[i], err = r.event(); err != nil {
			return nil, fmt.Errorf("search audit events: %w", err)
		}
	}
	return evs, nil
}

// ApproversOf returns who approved each of the transfers ids, in the
// order they did, in one query: a page of held transfers asks for them
// all.
func (l *Ledger) ApproversOf(ctx context.Context, ids []string) (map[string][]string, error) {
	who := map[string][]string{}
	if len(ids) == 0 {
		return who, nil
	}
	in := make([]string, len(ids))
	args := make([]any, len(ids))
	for i, id := range ids {
		in[i], args[i] = "$"+strconv.Itoa(i+1), id
	}
	rows, err := l.reads.QueryContext(ctx, `SELECT transfer_id, approver FROM approvals WHERE transfer_id IN (`+
		strings.Join(in, ", ")+`) ORDER BY transfer_id, approved_at, approver`, args...)
	if err != nil {
		return nil, fmt.Errorf("list approvals: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, a string
		if err := rows.Scan(&id, &a); err != nil {
			return nil, fmt.Errorf("list approvals: %w", err)
		}
		who[id] = append(who[id], a)
	}
	return who, rows.Err()
}
