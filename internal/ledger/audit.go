package ledger

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/airlock-gw/airlock/internal/clip"
)

// Event is one entry of the audit log. Seq, At, PrevHash and Hash are set
// by the ledger.
type Event struct {
	Seq        int64             `json:"seq"`
	At         time.Time         `json:"at"`
	Kind       string            `json:"kind"`  // e.g. "connect", "auth.ok", "upload.start", "config.reload"
	Actor      string            `json:"actor"` // user name, "system", "operator"
	RemoteIP   string            `json:"remote_ip,omitempty"`
	ConnID     string            `json:"conn_id,omitempty"`
	TransferID string            `json:"transfer_id,omitempty"`
	Detail     map[string]string `json:"detail,omitempty"`
	PrevHash   string            `json:"prev_hash"`
	Hash       string            `json:"hash"`
}

// clip bounds the strings of ev a client may have chosen, so that no
// request can make the audit trail grow much more than it sent: callers
// clip what they know to be untrusted, and this is the net under them.
func (ev *Event) clip() {
	ev.Actor = clip.String(ev.Actor, clip.Name)
	ev.RemoteIP = clip.String(ev.RemoteIP, clip.Name)
	ev.ConnID = clip.String(ev.ConnID, clip.Name)
	cloned := false
	for k, v := range ev.Detail {
		if len(v) <= clip.Text {
			continue
		}
		if !cloned { // the caller's map is left alone
			ev.Detail, cloned = maps.Clone(ev.Detail), true
		}
		ev.Detail[k] = clip.String(v, clip.Text)
	}
}

// Append adds ev to the audit log on its own; Kind is required and Actor
// defaults to "system".
func (l *Ledger) Append(ctx context.Context, ev Event) (Event, error) {
	ev.At = now()
	if err := l.withEvent(ctx, relaxed, &ev, nil); err != nil {
		return Event{}, fmt.Errorf("append audit event: %w", err)
	}
	return ev, nil
}

// The statements of an append. The first takes the chain head's lock and
// reserves the sequence numbers of the events appended.
const (
	sqlLockHead       = `UPDATE audit_head SET seq = seq + $1 WHERE id = 1`
	sqlReadHead       = `SELECT seq, hash FROM audit_head WHERE id = 1`
	sqlInsertEvent    = `INSERT INTO audit_events (` + eventColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`
	sqlUpdateHeadHash = `UPDATE audit_head SET hash = $1 WHERE id = 1`
)

// Head returns the chain head: the seq and hash of the latest event, or 0
// and "" before the first. It makes the head durable first, with every
// commit before it, so that a checkpoint of it cannot outlive it when the
// machine crashes.
func (l *Ledger) Head(ctx context.Context) (seq int64, hash string, err error) {
	err = l.inTx(ctx, durable, func(tx *sql.Tx) error {
		// A write, so that the commit syncs: it changes nothing.
		if _, err := tx.ExecContext(ctx, sqlLockHead, 0); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, sqlReadHead).Scan(&seq, &hash)
	})
	if err != nil {
		return 0, "", fmt.Errorf("read audit chain head: %w", err)
	}
	return seq, hash, nil
}

// prepareEvents checks evs are complete enough to append.
func prepareEvents(evs []*Event) error {
	for _, ev := range evs {
		if ev.Kind == "" {
			return errors.New("event kind is required")
		}
		if ev.Actor == "" {
			ev.Actor = "system"
		}
		ev.clip()
	}
	return nil
}

// withEvent runs fn (if not nil) and then appends ev as the next link of the
// chain, in one transaction, filling in ev's Seq, PrevHash and Hash.
func (l *Ledger) withEvent(ctx context.Context, mode commitMode, ev *Event, fn func(*sql.Tx) error) error {
	return l.withEvents(ctx, mode, []*Event{ev}, fn)
}

// withEvents is withEvent for several events, appended in order.
//
// The transaction's first statement bumps the one-row chain head: that takes
// the row lock on Postgres and the write lock on SQLite, so appends from all
// connections and nodes take turns, and since every writer takes this lock
// before any other, writers cannot deadlock.
func (l *Ledger) withEvents(ctx context.Context, mode commitMode, evs []*Event, fn func(*sql.Tx) error) error {
	if err := prepareEvents(evs); err != nil {
		return err
	}
	return l.withEventsFn(ctx, mode, len(evs), func(tx *sql.Tx) ([]*Event, error) {
		if fn != nil {
			if err := fn(tx); err != nil {
				return nil, err
			}
		}
		return evs, nil
	})
}

// withEventsFn is withEvents for a transaction that decides which events
// it appends, at most most of them.
func (l *Ledger) withEventsFn(ctx context.Context, mode commitMode, most int, fn func(*sql.Tx) ([]*Event, error)) error {
	return l.inTx(ctx, mode, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, sqlLockHead, most); err != nil {
			return err
		}
		var last int64
		var prev string
		if err := tx.QueryRowContext(ctx, sqlReadHead).Scan(&last, &prev); err != nil {
			return err
		}
		evs, err := fn(tx)
		if err == nil {
			err = prepareEvents(evs)
		}
		if err == nil && len(evs) != most {
			// Give back the numbers reserved for events not appended.
			_, err = tx.ExecContext(ctx, sqlLockHead, len(evs)-most)
			last += int64(len(evs) - most)
		}
		if err != nil {
			return err
		}
		for i, ev := range evs {
			ev.Seq, ev.PrevHash = last-int64(len(evs)-1-i), prev
			r, err := storedForm(*ev)
			if err != nil {
				return err
			}
			ev.Hash = r.chainHash()
			if _, err := tx.ExecContext(ctx, sqlInsertEvent,
				r.Seq, r.At, r.Kind, r.Actor, r.RemoteIP, r.ConnID, r.TransferID, r.Detail, r.PrevHash, ev.Hash); err != nil {
				return err
			}
			prev = ev.Hash
		}
		_, err = tx.ExecContext(ctx, sqlUpdateHeadHash, prev)
		return err
	})
}

// Events returns the audit events of one transfer, or all of them if
// transferID is "", in ascending seq; limit > 0 returns only the first limit.
func (l *Ledger) Events(ctx context.Context, transferID string, limit int) ([]Event, error) {
	query := `SELECT ` + eventColumns + ` FROM audit_events`
	var args []any
	if transferID != "" {
		args = append(args, transferID)
		query += ` WHERE transfer_id = $1`
	}
	query += ` ORDER BY seq`
	if limit > 0 {
		args = append(args, limit)
		query += ` LIMIT $` + strconv.Itoa(len(args))
	}
	rows, err := l.eventRows(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	evs := make([]Event, len(rows))
	for i, r := range rows {
		if evs[i], err = r.event(); err != nil {
			return nil, fmt.Errorf("list audit events: %w", err)
		}
	}
	return evs, nil
}

const eventColumns = `seq, at, kind, actor, remote_ip, conn_id, transfer_id, detail, prev_hash, hash`

// eventRow is an event as stored, with At and Detail in their text form:
// that text is what the hash covers, so verification never depends on
// parsing what it checks.
type eventRow struct {
	Seq                                                   int64
	At, Kind, Actor, RemoteIP, ConnID, TransferID, Detail string
	PrevHash, Hash                                        string
}

func storedForm(ev Event) (eventRow, error) {
	detail := []byte("{}")
	if len(ev.Detail) > 0 {
		var err error
		// encoding/json sorts map keys: the encoding is canonical.
		if detail, err = json.Marshal(ev.Detail); err != nil {
			return eventRow{}, err
		}
	}
	return eventRow{
		Seq: ev.Seq, At: formatTime(ev.At), Kind: ev.Kind, Actor: ev.Actor, RemoteIP: ev.RemoteIP,
		ConnID: ev.ConnID, TransferID: ev.TransferID, Detail: string(detail), PrevHash: ev.PrevHash, Hash: ev.Hash,
	}, nil
}

func (r eventRow) event() (Event, error) {
	at, err := parseTime(r.At)
	if err != nil {
		return Event{}, fmt.Errorf("event %d: at: %w", r.Seq, err)
	}
	var detail map[string]string
	if err := json.Unmarshal([]byte(r.Detail), &detail); err != nil {
		return Event{}, fmt.Errorf("event %d: detail: %w", r.Seq, err)
	}
	if len(detail) == 0 {
		detail = nil
	}
	return Event{
		Seq: r.Seq, At: at, Kind: r.Kind, Actor: r.Actor, RemoteIP: r.RemoteIP, ConnID: r.ConnID,
		TransferID: r.TransferID, Detail: detail, PrevHash: r.PrevHash, Hash: r.Hash,
	}, nil
}

// chainHash is hex(sha256(prev_hash + "\n" + body)), where body is the JSON
// array [seq, at, kind, actor, remote_ip, conn_id, transfer_id, detail] of
// the stored values (detail being the JSON text as a string), so anyone can
// recompute it from the table.
func (r eventRow) chainHash() string {
	body, _ := json.Marshal([]any{r.Seq, r.At, r.Kind, r.Actor, r.RemoteIP, r.ConnID, r.TransferID, r.Detail}) // cannot fail for strings and integers
	sum := sha256.Sum256([]byte(r.PrevHash + "\n" + string(body)))
	return hex.EncodeToString(sum[:])
}

func (l *Ledger) eventRows(ctx context.Context, query string, args ...any) ([]eventRow, error) {
	return queryEvents(ctx, l.reads, query, args...)
}

// queryer runs queries: a pool or a transaction.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func queryEvents(ctx context.Context, q queryer, query string, args ...any) ([]eventRow, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var rs []eventRow
	for rows.Next() {
		var r eventRow
		if err := rows.Scan(&r.Seq, &r.At, &r.Kind, &r.Actor, &r.RemoteIP, &r.ConnID, &r.TransferID,
			&r.Detail, &r.PrevHash, &r.Hash); err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	return rs, rows.Err()
}
