package ledger

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Batch is the group of transfers one trigger (a route's flag) started.
type Batch struct {
	ID    string `json:"id"`
	Route string `json:"route"`
	// Trigger is the key of the object that started it, and
	// TriggerVersion that object's version (size and mtime).
	Trigger        string `json:"trigger"`
	TriggerVersion string `json:"trigger_version"`
	// Reruns is the batch an earlier version of the same trigger started,
	// if any: this one sends the prefix again.
	Reruns    string     `json:"reruns,omitempty"`
	Files     int        `json:"files"`
	State     string     `json:"state"` // BatchOpen, BatchDelivered or BatchFailed
	CreatedAt time.Time  `json:"created_at"`
	SettledAt *time.Time `json:"settled_at,omitempty"`
	// States counts the members by state (read by Batches and GetBatch).
	States map[State]int `json:"states,omitempty"`
}

// The states of a batch.
const (
	BatchOpen      = "open"
	BatchDelivered = "delivered"
	// BatchFailed: a member settled without being delivered (failed,
	// rejected or quarantined), so the batch cannot complete unless an
	// operator retries it, which may then deliver it after all.
	BatchFailed = "failed"
)

// Complete reports whether every member of b was delivered.
func (b Batch) Complete() bool { return b.States[Delivered] == b.Files }

// Broken reports whether a member of b settled without being delivered.
func (b Batch) Broken() bool {
	return b.States[Failed]+b.States[Rejected]+b.States[Quarantined] > 0
}

// OpenBatch records b (Route, Trigger and TriggerVersion set) and its
// members, made by NewTransfer in state Queued along b's route, in one
// transaction with an event for the batch ("batch.open") and one for each
// member, running inTx (when set) for each member. A trigger version seen
// before returns ErrAdmitted and changes nothing; an earlier version of
// the same trigger is named in Reruns.
func (l *Ledger) OpenBatch(ctx context.Context, b Batch, members []Transfer, inTx func(context.Context, *sql.Tx, Transfer) error) (Batch, error) {
	at := now()
	b.ID, b.CreatedAt, b.Files, b.State = newID(at), at, len(members), BatchOpen
	evs := make([]*Event, 0, 1+len(members))
	open := &Event{Kind: "batch.open", At: at, Detail: map[string]string{
		"batch": b.ID, "route": b.Route, "trigger": b.Trigger, "files": strconv.Itoa(b.Files)}}
	evs = append(evs, open)
	for i := range members {
		members[i].Batch = b.ID
		if err := checkAdmit(members[i]); err != nil {
			return Batch{}, fmt.Errorf("open batch: %w", err)
		}
		ev := &Event{Kind: "transfer." + string(Queued), Detail: map[string]string{"key": members[i].LandingKey, "batch": b.ID}}
		startEvent(members[i], ev)
		anchorRow(ev, members[i])
		evs = append(evs, ev)
	}
	err := l.withEvents(ctx, durable, evs, func(tx *sql.Tx) error {
		if err := insertBatch(ctx, tx, &b); err != nil {
			return err
		}
		open.Detail["reruns"] = b.Reruns
		for _, t := range members {
			if err := insertTransfer(ctx, tx, t); err != nil {
				return err
			}
			if inTx != nil {
				if err := inTx(ctx, tx, t); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return Batch{}, fmt.Errorf("open batch of %s for %s: %w", b.Route, b.Trigger, err)
	}
	return b, nil
}

// RefuseBatch records b (Route, Trigger and TriggerVersion set) as failed
// from the start, with no members, for why: a trigger whose batch must
// not be sent at all (a release that does not match its manifest). One
// event ("batch.failed", with why) and inTx (when set) go in the same
// transaction. A trigger version seen before returns ErrAdmitted.
func (l *Ledger) RefuseBatch(ctx context.Context, b Batch, why string, inTx func(context.Context, *sql.Tx, Batch) error) (Batch, error) {
	at := now()
	b.ID, b.CreatedAt, b.Files, b.State, b.SettledAt = newID(at), at, 0, BatchFailed, &at
	ev := &Event{Kind: "batch." + BatchFailed, At: at, Detail: map[string]string{
		"batch": b.ID, "route": b.Route, "trigger": b.Trigger, "files": "0", "reason": why}}
	err := l.withEvents(ctx, durable, []*Event{ev}, func(tx *sql.Tx) error {
		if err := insertBatch(ctx, tx, &b); err != nil {
			return err
		}
		ev.Detail["reruns"] = b.Reruns
		if _, err := tx.ExecContext(ctx, `UPDATE batches SET state = $1, settled_at = $2 WHERE id = $3`,
			BatchFailed, formatTime(at), b.ID); err != nil {
			return err
		}
		if inTx != nil {
			return inTx(ctx, tx, b)
		}
		return nil
	})
	if err != nil {
		return Batch{}, fmt.Errorf("refuse batch of %s for %s: %w", b.Route, b.Trigger, err)
	}
	return b, nil
}

// insertBatch inserts b unless its trigger version has a batch already,
// naming in b.Reruns the latest batch of an earlier version.
func insertBatch(ctx context.Context, tx *sql.Tx, b *Batch) error {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM batches WHERE route = $1 AND trigger_key = $2 AND trigger_version = $3`,
		b.Route, b.Trigger, b.TriggerVersion).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return ErrAdmitted
	}
	err := tx.QueryRowContext(ctx, `SELECT id FROM batches WHERE route = $1 AND trigger_key = $2 ORDER BY created_at DESC, id DESC LIMIT 1`,
		b.Route, b.Trigger).Scan(&b.Reruns)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO batches (id, route, trigger_key, trigger_version, reruns, files, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, b.ID, b.Route, b.Trigger, b.TriggerVersion, b.Reruns, b.Files, formatTime(b.CreatedAt))
	return err
}

// BatchFilter selects batches; zero fields select everything.
type BatchFilter struct {
	Route string
	State string // BatchOpen, BatchDelivered or BatchFailed
	Limit int
}

// Batches returns the batches f selects, newest first, with their members
// counted by state.
func (l *Ledger) Batches(ctx context.Context, f BatchFilter) ([]Batch, error) {
	query := `SELECT ` + batchColumns + ` FROM batches`
	var where []string
	var args []any
	for col, v := range map[string]string{"route": f.Route, "state": f.State} {
		if v != "" {
			args = append(args, v)
			where = append(where, col+" = $"+strconv.Itoa(len(args)))
		}
	}
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY created_at DESC, id DESC`
	if f.Limit > 0 {
		query += ` LIMIT ` + strconv.Itoa(f.Limit)
	}
	rows, err := l.reads.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list batches: %w", err)
	}
	var bs []Batch
	for rows.Next() {
		b, err := scanBatch(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("list batches: %w", err)
		}
		bs = append(bs, b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list batches: %w", err)
	}
	for i := range bs {
		if bs[i].States, err = l.memberStates(ctx, bs[i].ID); err != nil {
			return nil, err
		}
	}
	return bs, nil
}

func (l *Ledger) memberStates(ctx context.Context, batch string) (map[State]int, error) {
	rows, err := l.reads.QueryContext(ctx, `SELECT state, COUNT(*) FROM transfers WHERE batch = $1 GROUP BY state`, batch)
	if err != nil {
		return nil, fmt.Errorf("count members of batch %s: %w", batch, err)
	}
	defer rows.Close()
	states := map[State]int{}
	for rows.Next() {
		var s State
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, fmt.Errorf("count members of batch %s: %w", batch, err)
		}
		states[s] = n
	}
	return states, rows.Err()
}

const batchColumns = `id, route, trigger_key, trigger_version, reruns, files, state, created_at, settled_at`

func scanBatch(row interface{ Scan(...any) error }) (Batch, error) {
	var b Batch
	var created string
	var settled sql.NullString
	err := row.Scan(&b.ID, &b.Route, &b.Trigger, &b.TriggerVersion, &b.Reruns, &b.Files, &b.State, &created, &settled)
	if err != nil {
		return Batch{}, err
	}
	if b.CreatedAt, err = parseTime(created); err != nil {
		return Batch{}, fmt.Errorf("batch %s: %w", b.ID, err)
	}
	if b.SettledAt, err = parseNullTime(settled); err != nil {
		return Batch{}, fmt.Errorf("batch %s: %w", b.ID, err)
	}
	return b, nil
}

// GetBatch returns batch id with its members counted by state.
func (l *Ledger) GetBatch(ctx context.Context, id string) (Batch, error) {
	b, err := scanBatch(l.reads.QueryRowContext(ctx, `SELECT `+batchColumns+` FROM batches WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Batch{}, fmt.Errorf("get batch %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Batch{}, fmt.Errorf("get batch %s: %w", id, err)
	}
	if b.States, err = l.memberStates(ctx, id); err != nil {
		return Batch{}, err
	}
	return b, nil
}

// LastOfBatch reports, inside the transaction that records a member's
// delivery, whether it was the batch's last member not yet delivered.
// Writers take turns on the chain head's lock, so of members delivered at
// once exactly one sees it.
func LastOfBatch(ctx context.Context, tx *sql.Tx, batch string) (bool, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM transfers WHERE batch = $1 AND state <> $2`, batch, string(Delivered)).Scan(&n)
	return n == 0, err
}

// SettleBatch moves batch id to state to (BatchDelivered or BatchFailed)
// with ev (Kind "batch.<to>" unless set) and inTx (when set) in the same
// transaction. An open batch may go either way; a failed one, whose
// members an operator retried, may still be delivered. A batch settled so
// before is left as it is (settled false), and inTx does not run.
func (l *Ledger) SettleBatch(ctx context.Context, id, to string, ev Event, inTx func(context.Context, *sql.Tx) error) (settled bool, err error) {
	from := []string{BatchOpen}
	switch to {
	case BatchDelivered:
		from = append(from, BatchFailed)
	case BatchFailed:
	default:
		return false, fmt.Errorf("settle batch %s: no state %q", id, to)
	}
	ev.Kind = cmp.Or(ev.Kind, "batch."+to)
	ev.At = now()
	errSettled := errors.New("settled before")
	err = l.withEvent(ctx, durable, &ev, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE batches SET state = $1, settled_at = $2 WHERE id = $3 AND state IN ($4, $5)`,
			to, formatTime(ev.At), id, from[0], from[len(from)-1])
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return cmp.Or(err, errSettled)
		}
		if inTx != nil {
			return inTx(ctx, tx)
		}
		return nil
	})
	switch {
	case errors.Is(err, errSettled):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("settle batch %s: %w", id, err)
	}
	return true, nil
}
