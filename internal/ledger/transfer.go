package ledger

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Direction says which way a transfer moves data.
type Direction string

// The directions.
const (
	// Ingress: a supplier sends data in.
	Ingress Direction = "ingress"
	// Egress: data goes out. Along a route (a push dataset), a transfer
	// is queued when its object appears and delivered by the pipeline.
	// A supplier's download from its /download area has no route: it is
	// recorded once, when the supplier closes the file: delivered when it
	// read the whole file, failed when it read part of it; its size is
	// the bytes read.
	Egress Direction = "egress"
	// Release: a data team releases files into the environment.
	Release Direction = "release"
)

// ParseDirection parses a direction name, as given to the CLI.
func ParseDirection(s string) (Direction, error) {
	switch d := Direction(strings.ToLower(s)); d {
	case Ingress, Egress, Release:
		return d, nil
	}
	return "", fmt.Errorf("unknown direction %q: want %s, %s or %s", s, Ingress, Egress, Release)
}

// State is where a transfer is in its life. An upload:
// receiving → received → scanning → delivering → delivered | quarantined | failed.
// An upload cut off is interrupted (receiving ⇄ interrupted) until its
// client resumes it, or fails when its resume window ends. A transfer
// along a route: queued → [awaiting_approval →] [scanning →] delivering →
// delivered | rejected | quarantined | failed.
type State string

// The states of a transfer.
const (
	Receiving   State = "receiving"
	Interrupted State = "interrupted"
	Received    State = "received"
	Queued      State = "queued"
	// AwaitingApproval holds a transfer until enough people approve it.
	AwaitingApproval State = "awaiting_approval"
	Scanning         State = "scanning"
	Delivering       State = "delivering"
	Delivered        State = "delivered"
	Quarantined      State = "quarantined"
	Failed           State = "failed"
	// Rejected: an approver refused it; nothing was sent or deleted.
	Rejected State = "rejected"
)

var states = []State{Receiving, Interrupted, Received, Queued, AwaitingApproval, Scanning, Delivering,
	Delivered, Quarantined, Failed, Rejected}

// ParseState parses a state name, as given to the CLI's --state flag.
func ParseState(s string) (State, error) {
	if st := State(strings.ToLower(s)); slices.Contains(states, st) {
		return st, nil
	}
	names := make([]string, len(states))
	for i, st := range states {
		names[i] = string(st)
	}
	return "", fmt.Errorf("unknown state %q: want one of %s", s, strings.Join(names, ", "))
}

// Transfer is one file moving through the gateway.
type Transfer struct {
	ID        string    `json:"id"`
	Direction Direction `json:"direction"`
	// Supplier is who sent the file: a supplier's SFTP name, or the writer
	// of an object a route picked up.
	Supplier string `json:"supplier"`
	// Route is the dataset or route the transfer moves along; "" for a
	// supplier's own uploads and downloads.
	Route string `json:"route,omitempty"`
	// Batch groups the transfers one trigger started; "" when none.
	Batch       string    `json:"batch,omitempty"`
	Path        string    `json:"path"` // as the supplier sees it, e.g. "/2026/data.csv"
	Size        int64     `json:"size"`
	SHA256      string    `json:"sha256"` // lowercase hex, "" until known
	State       State     `json:"state"`
	ScanResult  string    `json:"scan_result"`
	Destination string    `json:"destination"`
	Error       string    `json:"error"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	// MTime is the modification time the supplier's client set, if it did.
	MTime *time.Time `json:"mtime,omitempty"`
	// HiddenAt is when the supplier removed the settled upload from its
	// listing, if it did.
	HiddenAt *time.Time `json:"hidden_at,omitempty"`
	// Not in the public JSON contract but kept in the row:
	Attempts   int    `json:"attempts"`
	LandingKey string `json:"landing_key"` // object key in the landing store, or a route's source store
	Node       string `json:"node"`        // node that received it (crash recovery is per node)
	RemoteIP   string `json:"remote_ip"`
}

var (
	// ErrNotFound means no transfer has the given id.
	ErrNotFound = errors.New("transfer not found")
	// ErrStateConflict means the transfer is not in a state Advance may move it from.
	ErrStateConflict = errors.New("transfer state conflict")
)

// NewTransfer returns t as a new transfer in state Receiving (Queued, if
// that is its state already), with a fresh ID and timestamps. Nothing is
// recorded yet: Begin records it as it is, Record together with its
// outcome, Admit as a route's.
func NewTransfer(t Transfer) Transfer {
	at := now()
	t.ID = newID(at)
	if t.State != Queued {
		t.State = Receiving
	}
	t.CreatedAt, t.UpdatedAt = at, at
	if t.Direction == "" {
		t.Direction = Ingress
	}
	return t
}

// Begin records t, made by NewTransfer, in state Receiving and appends ev
// (kind "upload.start" unless set; actor and remote IP default to the
// transfer's) in the same transaction.
func (l *Ledger) Begin(ctx context.Context, t Transfer, ev Event) (Transfer, error) {
	if err := checkNew(t); err != nil {
		return Transfer{}, fmt.Errorf("begin transfer: %w", err)
	}
	startEvent(t, &ev)
	ev.Detail = maps.Clone(ev.Detail) // the caller's map is not ours to add to
	anchorRow(&ev, t)
	// Relaxed: a transfer lost with its Begin was never acknowledged, and
	// the commit that settles the upload makes this one durable too.
	err := l.withEvent(ctx, relaxed, &ev, func(tx *sql.Tx) error { return insertTransfer(ctx, tx, t) })
	if err != nil {
		return Transfer{}, fmt.Errorf("begin transfer %s: %w", t.ID, err)
	}
	return t, nil
}

// Record records t, made by NewTransfer and not begun, together with its
// move into state to: what Begin with start and then Advance with ch and
// ev would record, in one transaction, committed as a change into to is.
// It is for a transfer that is over as soon as it has begun.
func (l *Ledger) Record(ctx context.Context, t Transfer, start Event, to State, ch Change, ev Event) (Transfer, error) {
	if err := checkNew(t); err != nil {
		return Transfer{}, fmt.Errorf("record transfer: %w", err)
	}
	if !slices.Contains(states, to) {
		return Transfer{}, fmt.Errorf("record transfer %s: unknown state %q", t.ID, to)
	}
	startEvent(t, &start)
	changeEvent(t.ID, to, &ev)
	move(&t, to, ch, &ev)
	anchorRow(&ev, t)
	err := l.withEvents(ctx, commitInto(to), []*Event{&start, &ev}, func(tx *sql.Tx) error {
		err := insertTransfer(ctx, tx, t)
		if err == nil && ch.Resume != nil {
			err = saveResumePoint(ctx, tx, t.ID, ch.Resume)
		}
		if err != nil || ch.InTx == nil {
			return err
		}
		return ch.InTx(ctx, tx, t)
	})
	if err != nil {
		return Transfer{}, fmt.Errorf("record transfer %s: %w", t.ID, err)
	}
	return t, nil
}

func checkNew(t Transfer) error {
	switch {
	case t.Supplier == "" || t.Path == "":
		return errors.New("supplier and path are required")
	case t.ID == "" || (t.State != Receiving && t.State != Queued):
		return errors.New("not a new transfer: make it with NewTransfer")
	}
	return nil
}

// startEvent fills in what the event beginning t is: kind "upload.start"
// unless set, actor and remote IP the transfer's unless set, and t's time.
func startEvent(t Transfer, ev *Event) {
	if ev.Kind == "" {
		ev.Kind = "upload.start"
	}
	if ev.Actor == "" {
		ev.Actor = t.Supplier
	}
	if ev.RemoteIP == "" {
		ev.RemoteIP = t.RemoteIP
	}
	ev.TransferID = t.ID
	ev.At = t.CreatedAt
}

func insertTransfer(ctx context.Context, tx *sql.Tx, t Transfer) error {
	_, err := tx.ExecContext(ctx, sqlInsertTransfer,
		t.ID, string(t.Direction), t.Supplier, t.Path, t.Size, t.SHA256, string(t.State),
		t.ScanResult, t.Destination, t.Error, t.Attempts, t.LandingKey, t.Node, t.RemoteIP,
		formatTime(t.CreatedAt), formatTime(t.UpdatedAt), storedTime(t.MTime), storedTime(t.HiddenAt),
		t.Route, t.Batch)
	return err
}

// Change lists the fields an Advance may set; nil means unchanged.
type Change struct {
	Path, SHA256, ScanResult, Destination, Error *string
	Size                                         *int64
	IncAttempts                                  bool
	// Node moves the transfer to another node: the one that resumes an
	// interrupted upload recovers it if it stops (see sftpd).
	Node *string
	// Resume is where the transfer, moving into Interrupted, may go on
	// from; a move out of Interrupted removes it (see ResumePoint).
	Resume *ResumePoint
	// Also are more events of the transfer, appended after the move's
	// own in the same transaction, e.g. that a delivery replaced a file.
	Also []Event
	// InTx, when set, runs inside Advance's transaction after the row is
	// updated, with the transfer as it now is; its error undoes the whole
	// Advance. The job queue inserts the next job here, so that a state
	// change and the work it calls for commit together or not at all.
	InTx func(ctx context.Context, tx *sql.Tx, t Transfer) error
}

func (c Change) apply(t *Transfer) {
	set(&t.Path, c.Path)
	set(&t.SHA256, c.SHA256)
	set(&t.ScanResult, c.ScanResult)
	set(&t.Destination, c.Destination)
	set(&t.Error, c.Error)
	set(&t.Size, c.Size)
	set(&t.Node, c.Node)
	if c.IncAttempts {
		t.Attempts++
	}
}

func set[T any](dst, v *T) {
	if v != nil {
		*dst = *v
	}
}

// Advance moves transfer id from one of the states in from to state to (which
// may equal the current state, e.g. for a rename while Receiving), applies ch
// and appends ev, all in one transaction. ev gets the transfer ID, the detail
// keys "from" and "to", and kind "transfer.<to>" unless set.
// It fails with ErrNotFound or ErrStateConflict, changing nothing.
func (l *Ledger) Advance(ctx context.Context, id string, from []State, to State, ch Change, ev Event) (Transfer, error) {
	if !slices.Contains(states, to) {
		return Transfer{}, fmt.Errorf("advance transfer %s: unknown state %q", id, to)
	}
	changeEvent(id, to, &ev)
	evs := []*Event{&ev}
	for _, also := range ch.Also {
		also.TransferID = id
		evs = append(evs, &also)
	}
	var t Transfer
	err := l.withEvents(ctx, commitInto(to), evs, func(tx *sql.Tx) error {
		// withEvent holds the chain head lock, which every writer takes
		// first, so the row cannot change between this read and the update.
		var err error
		if t, err = l.getTransfer(ctx, tx, id); err != nil {
			return err
		}
		if !slices.Contains(from, t.State) {
			return fmt.Errorf("%w: state is %s, not %v", ErrStateConflict, t.State, from)
		}
		was := t.State
		move(&t, to, ch, &ev)
		for _, also := range evs[1:] {
			also.At = ev.At
		}
		anchorRow(&ev, t)
		_, err = tx.ExecContext(ctx, sqlUpdateTransfer,
			t.Size, t.SHA256, string(t.State), t.ScanResult, t.Destination, t.Error, t.Attempts,
			formatTime(t.UpdatedAt), t.ID)
		if err == nil && ch.Path != nil {
			_, err = tx.ExecContext(ctx, sqlRenameTransfer, t.Path, t.ID)
		}
		if err == nil && ch.Node != nil {
			_, err = tx.ExecContext(ctx, sqlMoveTransferNode, t.Node, t.ID)
		}
		if err == nil && (was == Interrupted || ch.Resume != nil) {
			err = saveResumePoint(ctx, tx, t.ID, ch.Resume)
		}
		if err != nil || ch.InTx == nil {
			return err
		}
		return ch.InTx(ctx, tx, t)
	})
	if err != nil {
		return Transfer{}, fmt.Errorf("advance transfer %s: %w", id, err)
	}
	return t, nil
}

// changeEvent fills in what the event of transfer id's move into state to
// is: kind "transfer.<to>" unless set, and the transfer.
func changeEvent(id string, to State, ev *Event) {
	if ev.Kind == "" {
		ev.Kind = "transfer." + string(to)
	}
	ev.TransferID = id
}

// move moves t into state to with ch applied, and fills in the rest of
// the move's event: the detail keys "from" and "to", and the time now,
// which is also t's UpdatedAt.
func move(t *Transfer, to State, ch Change, ev *Event) {
	ev.At = now()
	ev.Detail = maps.Clone(ev.Detail)
	if ev.Detail == nil {
		ev.Detail = map[string]string{}
	}
	ev.Detail["from"], ev.Detail["to"] = string(t.State), string(to)
	ch.apply(t)
	t.State, t.UpdatedAt = to, ev.At
}

// commitInto is how a change into state to commits. A transfer passing
// through receiving, scanning or delivering is worked on again from its
// previous state if a crash of the machine undoes the change. So is a
// delivery: its copy is on disk at the destination before it is recorded,
// and the pipeline's re-run records it again from that copy, which it
// verifies, even when the landing copy is gone. Received is what a client
// is told its upload became, a quarantined transfer's landing copy is
// deleted once it is recorded, and a failed one waits for an operator:
// those must be on disk, as must an interrupted upload, which a client may
// come back to resume after a crash.
func commitInto(to State) commitMode {
	switch to {
	case Receiving, Scanning, Delivering, Delivered:
		return relaxed
	}
	return durable
}

// Get returns transfer id, or ErrNotFound.
func (l *Ledger) Get(ctx context.Context, id string) (Transfer, error) {
	t, err := l.getTransfer(ctx, nil, id)
	if err != nil {
		return Transfer{}, fmt.Errorf("get transfer %s: %w", id, err)
	}
	return t, nil
}

// Filter selects transfers for List; zero fields select everything.
type Filter struct {
	Direction  Direction
	Supplier   string
	Route      string
	Batch      string
	Path       string
	PathPrefix string // paths that start with it
	// Destination selects transfers delivered or quarantined there.
	Destination string
	States      []State
	// Recent, when it has states, widens States: transfers in one of
	// Recent.States changed at or after Recent.Since match as well, so
	// that one query asks "pending, or settled lately".
	Recent RecentStates
	Node   string
	// UpdatedSince selects transfers whose last change is at or after it.
	UpdatedSince time.Time
	// Shown leaves out the transfers their supplier hid (see Hide).
	Shown bool
	Limit int
	Search
}

// RecentStates are states that count only since a time.
type RecentStates struct {
	States []State
	Since  time.Time
}

// prefixUpperBound returns the least string greater than every string that
// starts with prefix, in byte order; ok is false when there is none.
func prefixUpperBound(prefix string) (string, bool) {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}

// List returns the transfers matching f, newest first.
func (l *Ledger) List(ctx context.Context, f Filter) ([]Transfer, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Direction != "" {
		where = append(where, "direction = "+arg(string(f.Direction)))
	}
	if f.Supplier != "" {
		where = append(where, "supplier = "+arg(f.Supplier))
	}
	if f.Route != "" {
		// The second term lets the route indexes, partial, serve it.
		where = append(where, "route = "+arg(f.Route), "route <> ''")
	}
	if f.Batch != "" {
		where = append(where, "batch = "+arg(f.Batch))
	}
	if f.Path != "" {
		where = append(where, "path = "+arg(f.Path))
	}
	if f.Destination != "" {
		where = append(where, "destination = "+arg(f.Destination))
	}
	if f.PathPrefix != "" {
		// A byte-order range rather than LIKE (which folds case in SQLite
		// and has wildcards), so that the (supplier, path) index serves it.
		// Postgres compares in the database's collation unless told "C".
		col := "path"
		if l.postgres {
			col = `path COLLATE "C"`
		}
		where = append(where, col+" >= "+arg(f.PathPrefix))
		if upper, ok := prefixUpperBound(f.PathPrefix); ok {
			where = append(where, col+" < "+arg(upper))
		}
	}
	stateIn := func(states []State) string {
		in := make([]string, len(states))
		for i, s := range states {
			in[i] = arg(string(s))
		}
		return "state IN (" + strings.Join(in, ", ") + ")"
	}
	if len(f.States) > 0 {
		cond := stateIn(f.States)
		if len(f.Recent.States) > 0 {
			cond = "(" + cond + " OR (" + stateIn(f.Recent.States) + " AND updated_at >= " + arg(formatTime(f.Recent.Since)) + "))"
		}
		where = append(where, cond)
	}
	if f.Node != "" {
		where = append(where, "node = "+arg(f.Node))
	}
	if f.Shown {
		where = append(where, "hidden_at IS NULL")
	}
	if !f.UpdatedSince.IsZero() {
		where = append(where, "updated_at >= "+arg(formatTime(f.UpdatedSince)))
	}
	where = append(where, f.where(arg, l.postgres)...)
	query := `SELECT ` + transferColumns + ` FROM transfers`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY created_at DESC, id DESC"
	if f.Limit > 0 {
		query += " LIMIT " + arg(f.Limit)
	}

	rows, err := l.reads.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list transfers: %w", err)
	}
	defer rows.Close()
	var ts []Transfer
	for rows.Next() {
		t, err := scanTransfer(rows)
		if err != nil {
			return nil, fmt.Errorf("list transfers: %w", err)
		}
		ts = append(ts, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list transfers: %w", err)
	}
	return ts, nil
}

const transferColumns = `id, direction, supplier, path, size, sha256, state, scan_result, destination,
	error, attempts, landing_key, node, remote_ip, created_at, updated_at, mtime, hidden_at, route, batch`

// Every statement that writes a transfer row runs in the transaction of an
// event that carries the row's digest as it leaves it (anchorRow): audit
// verify reports a row that disagrees with its latest digest as edited.
const (
	sqlInsertTransfer = `INSERT INTO transfers (` + transferColumns + `)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)`
	// The path is set apart, by renames only: SQLite rewrites the entry of
	// every index on a column an UPDATE sets, changed or not, and each
	// entry rewritten is another page in the commit.
	sqlUpdateTransfer = `UPDATE transfers SET size = $1, sha256 = $2, state = $3,
		scan_result = $4, destination = $5, error = $6, attempts = $7, updated_at = $8 WHERE id = $9`
	sqlRenameTransfer   = `UPDATE transfers SET path = $1 WHERE id = $2`
	sqlMoveTransferNode = `UPDATE transfers SET node = $1 WHERE id = $2`
	sqlGetTransfer      = `SELECT ` + transferColumns + ` FROM transfers WHERE id = $1`
)

func (l *Ledger) getTransfer(ctx context.Context, tx *sql.Tx, id string) (Transfer, error) {
	t, err := scanTransfer(l.queryRow(ctx, tx, sqlGetTransfer, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Transfer{}, ErrNotFound
	}
	return t, err
}

// storedRow is a transfers row as scanned, its times still as stored.
type storedRow struct {
	t                Transfer
	created, updated string
	mtime, hidden    sql.NullString
}

func scanRow(row interface{ Scan(...any) error }) (storedRow, error) {
	var r storedRow
	t := &r.t
	err := row.Scan(&t.ID, &t.Direction, &t.Supplier, &t.Path, &t.Size, &t.SHA256, &t.State, &t.ScanResult,
		&t.Destination, &t.Error, &t.Attempts, &t.LandingKey, &t.Node, &t.RemoteIP, &r.created, &r.updated,
		&r.mtime, &r.hidden, &t.Route, &t.Batch)
	return r, err
}

// digest is the row's digest as anchorRow computes it.
func (r storedRow) digest() string {
	return rowDigest(r.t, r.created, r.updated, nullable(r.mtime), nullable(r.hidden))
}

// nullable is a scanned nullable column as rowDigest takes it.
func nullable(s sql.NullString) any {
	if !s.Valid {
		return nil
	}
	return s.String
}

func scanTransfer(row interface{ Scan(...any) error }) (Transfer, error) {
	r, err := scanRow(row)
	if err != nil {
		return Transfer{}, err
	}
	t := r.t
	if t.MTime, err = parseNullTime(r.mtime); err != nil {
		return Transfer{}, fmt.Errorf("transfer %s: mtime: %w", t.ID, err)
	}
	if t.HiddenAt, err = parseNullTime(r.hidden); err != nil {
		return Transfer{}, fmt.Errorf("transfer %s: hidden_at: %w", t.ID, err)
	}
	if t.CreatedAt, err = parseTime(r.created); err != nil {
		return Transfer{}, fmt.Errorf("transfer %s: created_at: %w", t.ID, err)
	}
	if t.UpdatedAt, err = parseTime(r.updated); err != nil {
		return Transfer{}, fmt.Errorf("transfer %s: updated_at: %w", t.ID, err)
	}
	return t, nil
}

// idEncoding is base32hex in lower case: its alphabet is in ASCII order, so
// ids sort as their bytes do.
var idEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// IsID reports whether s has the form of a transfer id.
func IsID(s string) bool {
	if len(s) != 26 {
		return false
	}
	_, err := idEncoding.DecodeString(s)
	return err == nil
}

// newID returns a 26-character id that sorts by creation time: 48 bits of
// Unix milliseconds followed by 80 random bits.
func newID(at time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(at.UnixMilli())<<16)
	rand.Read(b[6:]) // never fails (crypto/rand, Go ≥ 1.24)
	return idEncoding.EncodeToString(b[:])
}
