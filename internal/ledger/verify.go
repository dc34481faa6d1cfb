package ledger

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Anchor is a position of the audit chain vouched for from outside the
// database, such as a signed checkpoint: the event at Seq has Hash.
type Anchor struct {
	Seq  int64
	Hash string
	Name string // where it comes from, for the report
}

// Problem is one disagreement VerifyAudit found.
type Problem struct {
	Seq        int64  // the event concerned, or 0
	TransferID string // the transfer concerned, or ""
	Anchor     string // the anchor concerned, or ""
	Reason     string
}

func (p Problem) String() string {
	switch {
	case p.Anchor != "":
		return fmt.Sprintf("checkpoint %s: %s", p.Anchor, p.Reason)
	case p.TransferID != "":
		return fmt.Sprintf("transfer %s: %s", p.TransferID, p.Reason)
	}
	return fmt.Sprintf("event %d: %s", p.Seq, p.Reason)
}

// Verification is what VerifyAudit found.
type Verification struct {
	Events int64 // events whose links verified
	// Broken: a link of the chain is broken (the first problem says
	// where), so the events beyond it and the rows were not checked.
	Broken bool
	Rows   int64 // transfer rows checked against their events
	// Unanchored counts the rows whose events carry no row digest: they
	// were last changed by an airlock before digests, and only their
	// events' existence is checked.
	Unanchored int64
	Anchors    int       // anchors the chain agrees with
	Problems   []Problem // the first maxProblems found
	Omitted    int64     // problems found beyond those
}

// Intact reports whether nothing disagreed.
func (v *Verification) Intact() bool { return len(v.Problems) == 0 }

// maxProblems bounds the problems a Verification lists: a ledger with
// every row deleted must not need memory for each.
const maxProblems = 100

func (v *Verification) report(p Problem) {
	if len(v.Problems) < maxProblems {
		v.Problems = append(v.Problems, p)
		return
	}
	v.Omitted++
}

// VerifyAudit is Verify without anchors, for a yes or no: it returns the
// number of events verified, and an error, a *TamperError, if anything
// disagreed.
func (l *Ledger) VerifyAudit(ctx context.Context) (int64, error) {
	v, err := l.Verify(ctx, nil)
	if err != nil {
		return 0, err
	}
	if !v.Intact() {
		return v.Events, &TamperError{v}
	}
	return v.Events, nil
}

// TamperError is what VerifyAudit returns for a record that disagrees
// with itself.
type TamperError struct{ Verification }

func (e *TamperError) Error() string {
	return fmt.Sprintf("audit record tampered with: %v (%d problems)", e.Problems[0], len(e.Problems)+int(e.Omitted))
}

// Verify checks the whole audit chain, each anchor against it, and
// every transfer row against the digest its latest event holds (RowKey).
//
// The chain's links reveal an edited, deleted or inserted event, including
// at the tail; the anchors, a rewrite of the chain from some point on
// together with its head; the digests, an edited row; and the events of a
// transfer without a row, a deleted one.
//
// It reads one snapshot of the database, so a gateway writing meanwhile is
// not taken for tampering, and holds in memory one entry per transfer (its
// latest digest), never every row or event.
func (l *Ledger) Verify(ctx context.Context, anchors []Anchor) (Verification, error) {
	// Batches bound how many events are held at once.
	return l.verifyAudit(ctx, 1000, anchors)
}

func (l *Ledger) verifyAudit(ctx context.Context, batch int, anchors []Anchor) (Verification, error) {
	var opts *sql.TxOptions
	if l.postgres {
		opts = &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	// SQLite's read pool is query-only, and its transaction reads one
	// snapshot from its first statement on.
	tx, err := l.reads.BeginTx(ctx, opts)
	if err != nil {
		return Verification{}, fmt.Errorf("verify audit: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // read-only: nothing to keep
	vr := &verifier{tx: tx, batch: batch, latest: map[string]rowEvent{}, anchors: map[int64][]Anchor{}}
	for _, a := range anchors {
		vr.anchors[a.Seq] = append(vr.anchors[a.Seq], a)
	}
	if err := vr.chain(ctx); err != nil {
		return Verification{}, fmt.Errorf("verify audit chain: %w", err)
	}
	if vr.v.Broken {
		return vr.v, nil
	}
	if err := vr.rows(ctx); err != nil {
		return Verification{}, fmt.Errorf("verify transfer rows: %w", err)
	}
	return vr.v, nil
}

// verifier is one run of VerifyAudit.
type verifier struct {
	tx      *sql.Tx
	batch   int
	anchors map[int64][]Anchor
	head    int64
	// latest holds, for each transfer with events, the latest of them
	// and the row digest of the latest that has one.
	latest map[string]rowEvent
	v      Verification
}

type rowEvent struct {
	seq       int64  // the transfer's latest event
	digestSeq int64  // the latest event with a row digest, or 0
	digest    string // its digest
}

// chain walks the chain up to its head, noting each transfer's latest
// digest and checking the anchors on the way.
func (vr *verifier) chain(ctx context.Context) error {
	// The snapshot holds still, but a row inserted behind the ledger's
	// back may lie beyond the head.
	var lastSeq sql.NullInt64
	if err := vr.tx.QueryRowContext(ctx, `SELECT MAX(seq) FROM audit_events`).Scan(&lastSeq); err != nil {
		return err
	}
	var headHash string
	if err := vr.tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`).
		Scan(&vr.head, &headHash); err != nil {
		return err
	}
	// The count is of the events before a break, which all verified.
	broken := func(seq int64, format string, args ...any) error {
		vr.v.Broken, vr.v.Events = true, seq-1
		vr.v.report(Problem{Seq: seq, Reason: fmt.Sprintf(format, args...)})
		return nil
	}
	checked, prev := int64(0), ""
	for checked < vr.head {
		rows, err := queryEvents(ctx, vr.tx, `SELECT `+eventColumns+` FROM audit_events
			WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3`, checked, vr.head, vr.batch)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			break
		}
		for _, r := range rows {
			switch {
			case r.Seq != checked+1:
				return broken(checked+1, "event missing (deleted)")
			case r.PrevHash != prev:
				return broken(r.Seq, "prev_hash does not match the hash of the event before")
			case r.chainHash() != r.Hash:
				return broken(r.Seq, "hash does not match the contents (row edited)")
			}
			vr.note(r)
			prev = r.Hash
			checked++
			vr.v.Events = checked
		}
	}
	switch {
	case checked < vr.head:
		return broken(checked+1, "event missing: the chain head is at seq %d but the log ends at %d (tail deleted)",
			vr.head, checked)
	case prev != headHash:
		return broken(vr.head, "hash does not match the chain head")
	case lastSeq.Int64 > vr.head:
		return broken(vr.head+1, "event beyond the chain head at seq %d (inserted)", vr.head)
	}
	vr.beyondHead()
	return nil
}

// note checks r, a verified event, against the anchors at its seq and
// records it as its transfer's latest.
func (vr *verifier) note(r eventRow) {
	for _, a := range vr.anchors[r.Seq] {
		if a.Hash != r.Hash {
			vr.v.report(Problem{Seq: r.Seq, Anchor: a.Name, Reason: fmt.Sprintf(
				"the event at seq %d had hash %s, the chain now has %s: the chain was rewritten (at or before seq %d)",
				r.Seq, a.Hash, r.Hash, r.Seq)})
			continue
		}
		vr.v.Anchors++
	}
	if r.TransferID == "" {
		return
	}
	re := vr.latest[r.TransferID]
	re.seq = r.Seq
	// Only an event with a digest needs its detail parsed.
	if strings.Contains(r.Detail, `"`+RowKey+`"`) {
		var detail map[string]string
		if json.Unmarshal([]byte(r.Detail), &detail) == nil && detail[RowKey] != "" {
			re.digestSeq, re.digest = r.Seq, detail[RowKey]
		}
	}
	vr.latest[r.TransferID] = re
}

// beyondHead reports the anchors past the end of the chain: events were
// deleted from its end, or it was rewritten shorter.
func (vr *verifier) beyondHead() {
	var past []Anchor
	for seq, as := range vr.anchors {
		if seq > vr.head {
			past = append(past, as...)
		}
	}
	slices.SortFunc(past, func(a, b Anchor) int { return cmp.Or(cmp.Compare(a.Seq, b.Seq), strings.Compare(a.Name, b.Name)) })
	for _, a := range past {
		vr.v.report(Problem{Seq: a.Seq, Anchor: a.Name, Reason: fmt.Sprintf(
			"vouches for the event at seq %d, but the chain ends at seq %d: events were deleted from its end, or the chain rewritten",
			a.Seq, vr.head)})
	}
}

// rows streams the transfer rows and checks each against its latest
// digest; then the transfers left with events but no row were deleted.
func (vr *verifier) rows(ctx context.Context) error {
	edited, err := vr.streamRows(ctx)
	if err != nil {
		return err
	}
	for _, e := range edited {
		reason, err := vr.diagnose(ctx, e.row, e.digestSeq)
		if err != nil {
			return err
		}
		vr.v.report(Problem{Seq: e.digestSeq, TransferID: e.row.ID, Reason: reason})
	}
	deleted := make([]string, 0, len(vr.latest))
	for id := range vr.latest {
		deleted = append(deleted, id)
	}
	slices.Sort(deleted)
	for _, id := range deleted {
		vr.v.report(Problem{Seq: vr.latest[id].seq, TransferID: id,
			Reason: fmt.Sprintf("no transfer row, but audit events up to seq %d (row deleted)", vr.latest[id].seq)})
	}
	return nil
}

// editedRow is a row that does not match its latest digest.
type editedRow struct {
	row Transfer
	rowEvent
}

// streamRows checks every row and returns the edited ones, as many as
// will be reported. It deletes the transfers it saw from latest.
func (vr *verifier) streamRows(ctx context.Context) ([]editedRow, error) {
	rows, err := vr.tx.QueryContext(ctx, `SELECT `+transferColumns+` FROM transfers ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var edited []editedRow
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			return nil, err
		}
		t := r.t
		vr.v.Rows++
		re, ok := vr.latest[t.ID]
		delete(vr.latest, t.ID)
		switch {
		case !ok:
			vr.v.report(Problem{TransferID: t.ID, Reason: "no audit event records this row (row inserted)"})
		case re.digest == "":
			vr.v.Unanchored++
		case !knownRowDigest(re.digest):
			vr.v.report(Problem{Seq: re.digestSeq, TransferID: t.ID, Reason: fmt.Sprintf(
				"event %d holds a row digest this airlock cannot read (%.8s…): verify with the airlock that wrote it", re.digestSeq, re.digest)})
		case r.digest() != re.digest:
			if len(edited)+len(vr.v.Problems) < maxProblems {
				edited = append(edited, editedRow{t, re})
			} else {
				vr.v.Omitted++
			}
		}
	}
	return edited, rows.Err()
}

// diagnose says how row differs from what its events state: the events
// name the state moved into ("to") and some values ("size", "sha256",
// "scan_result"), not every column.
func (vr *verifier) diagnose(ctx context.Context, row Transfer, seq int64) (string, error) {
	evs, err := queryEvents(ctx, vr.tx, `SELECT `+eventColumns+` FROM audit_events
		WHERE transfer_id = $1 AND seq <= $2 ORDER BY seq`, row.ID, vr.head)
	if err != nil {
		return "", err
	}
	stated := map[string]string{"state": string(Receiving)}
	for _, r := range evs {
		var detail map[string]string
		if json.Unmarshal([]byte(r.Detail), &detail) != nil {
			continue
		}
		for key, col := range map[string]string{"to": "state", "size": "size", "sha256": "sha256", "scan_result": "scan_result"} {
			if v, ok := detail[key]; ok {
				stated[col] = v
			}
		}
	}
	actual := map[string]string{"state": string(row.State), "size": fmt.Sprint(row.Size), "sha256": row.SHA256, "scan_result": row.ScanResult}
	var diffs []string
	for _, col := range []string{"state", "size", "sha256", "scan_result"} {
		if v, ok := stated[col]; ok && v != actual[col] {
			diffs = append(diffs, fmt.Sprintf("%s is %q, the events say %q", col, actual[col], v))
		}
	}
	if len(diffs) == 0 {
		return fmt.Sprintf("row edited: it does not match the digest of its latest event (seq %d)", seq), nil
	}
	return fmt.Sprintf("row edited: %s (latest event seq %d)", strings.Join(diffs, "; "), seq), nil
}
