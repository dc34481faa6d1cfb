package ledger

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"
)

var (
	// ErrOwnRequest means the person approving a release asked for it:
	// four eyes means two people.
	ErrOwnRequest = errors.New("the requester of a release cannot approve it")
	// ErrReleasePending means a release of the transfer is already
	// requested and waits for approvals.
	ErrReleasePending = errors.New("a release is already requested")
	// ErrNoRelease means no release of the transfer is requested.
	ErrNoRelease = errors.New("no release is requested")
)

// ReleaseRequest is a pending request to release a quarantined file.
type ReleaseRequest struct {
	TransferID  string    `json:"transfer_id"`
	Requester   string    `json:"requester"`
	Reason      string    `json:"reason"`
	SkipRescan  bool      `json:"skip_rescan"`
	RequestedAt time.Time `json:"requested_at"`
	Approvers   []string  `json:"approvers"`
}

// RequestRelease records requester's request to release quarantined
// transfer id, which waits for approvals (ApproveRelease), and appends ev
// (kind "quarantine.release_requested" unless set).
func (l *Ledger) RequestRelease(ctx context.Context, id, requester, reason string, skipScan bool, ev Event) (Transfer, error) {
	if requester == "" || reason == "" {
		return Transfer{}, fmt.Errorf("request release of %s: requester and reason are required", id)
	}
	ev.Kind, ev.TransferID = cmp.Or(ev.Kind, "quarantine.release_requested"), id
	ev.Detail = withDetail(ev.Detail, map[string]string{"requester": requester, "reason": reason, "skip_rescan": strconv.FormatBool(skipScan)})
	var t Transfer
	err := l.withEvent(ctx, durable, &ev, func(tx *sql.Tx) error {
		var err error
		if t, err = l.heldInQuarantine(ctx, tx, id); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO release_requests (transfer_id, requester, reason, skip_rescan, requested_at)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (transfer_id) DO NOTHING`, id, requester, reason, boolInt(skipScan), formatTime(now()))
		if err != nil {
			return err
		}
		if added, err := res.RowsAffected(); err != nil || added == 0 {
			return cmp.Or(err, ErrReleasePending)
		}
		return nil
	})
	if err != nil {
		return Transfer{}, fmt.Errorf("request release of %s: %w", id, err)
	}
	return t, nil
}

// ApproveRelease records approver's approval of the release requested of
// transfer id and appends ev (kind "approval.granted" unless set). The
// requester and the file's writer cannot approve. The approval that makes
// need approvers releases the file: the transfer moves back to Received,
// release runs in the same transaction (to queue the work), the request
// is closed and a "quarantine.release" event follows ev. Concurrent
// approvals take turns on the chain head's lock, so one release happens.
func (l *Ledger) ApproveRelease(ctx context.Context, id, approver string, need int,
	release func(context.Context, *sql.Tx, Transfer, ReleaseRequest) error, ev Event,
) (Transfer, int, error) {
	if approver == "" {
		return Transfer{}, 0, fmt.Errorf("approve release of %s: approver is required", id)
	}
	ev.Kind, ev.TransferID = cmp.Or(ev.Kind, "approval.granted"), id
	ev.Actor = cmp.Or(ev.Actor, approver)
	done := Event{Kind: "quarantine.release", Actor: ev.Actor, TransferID: id}
	var (
		t Transfer
		n int
	)
	// The approval that completes the count appends the release's event
	// too.
	err := l.withEventsFn(ctx, durable, 2, func(tx *sql.Tx) ([]*Event, error) {
		var err error
		t, n, err = l.approveReleaseIn(ctx, tx, id, approver, need, release, &ev, &done)
		if err != nil || n < need {
			return []*Event{&ev}, err
		}
		return []*Event{&ev, &done}, nil
	})
	if err != nil {
		return Transfer{}, 0, fmt.Errorf("approve release of %s: %w", id, err)
	}
	return t, n, nil
}

// approveReleaseIn records the approval in tx and, when it completes the
// count, releases the file; ev is the approval's event, done the release's.
func (l *Ledger) approveReleaseIn(ctx context.Context, tx *sql.Tx, id, approver string, need int,
	release func(context.Context, *sql.Tx, Transfer, ReleaseRequest) error, ev, done *Event,
) (Transfer, int, error) {
	t, err := l.heldInQuarantine(ctx, tx, id)
	if err != nil {
		return Transfer{}, 0, err
	}
	req, err := releaseRequest(ctx, tx, id)
	if err != nil {
		return Transfer{}, 0, err
	}
	n, err := recordReleaseApproval(ctx, tx, t, req, approver)
	if err != nil {
		return Transfer{}, 0, err
	}
	ev.At = now()
	ev.Detail = withDetail(ev.Detail, map[string]string{"release": "true", "requester": req.Requester,
		"approvals": strconv.Itoa(n), "needed": strconv.Itoa(need)})
	if n < need {
		return t, n, nil
	}
	if req.Approvers, err = releaseApprovers(ctx, tx, id); err != nil {
		return Transfer{}, 0, err
	}
	done.Detail = map[string]string{"reason": req.Reason, "skip_rescan": strconv.FormatBool(req.SkipRescan),
		"requester": req.Requester, "approvers": strings.Join(req.Approvers, ",")}
	move(&t, Received, Change{}, done)
	anchorRow(done, t)
	if _, err := tx.ExecContext(ctx, sqlUpdateTransfer, t.Size, t.SHA256, string(t.State), t.ScanResult,
		t.Destination, t.Error, t.Attempts, formatTime(t.UpdatedAt), t.ID); err != nil {
		return Transfer{}, 0, err
	}
	if err := closeRelease(ctx, tx, id); err != nil {
		return Transfer{}, 0, err
	}
	if release != nil {
		err = release(ctx, tx, t, req)
	}
	return t, n, err
}

// RejectRelease drops the release requested of transfer id, which stays
// quarantined, and appends ev (kind "quarantine.release_rejected").
func (l *Ledger) RejectRelease(ctx context.Context, id, reason string, ev Event) (Transfer, error) {
	if reason == "" {
		return Transfer{}, fmt.Errorf("reject release of %s: a reason is required", id)
	}
	ev.Kind, ev.TransferID = cmp.Or(ev.Kind, "quarantine.release_rejected"), id
	var t Transfer
	err := l.withEvent(ctx, durable, &ev, func(tx *sql.Tx) error {
		var err error
		if t, err = l.getTransfer(ctx, tx, id); err != nil {
			return err
		}
		req, err := releaseRequest(ctx, tx, id)
		if err != nil {
			return err
		}
		ev.Detail = withDetail(ev.Detail, map[string]string{"reason": reason, "requester": req.Requester})
		return closeRelease(ctx, tx, id)
	})
	if err != nil {
		return Transfer{}, fmt.Errorf("reject release of %s: %w", id, err)
	}
	return t, nil
}

// ReleaseRequests lists the pending release requests, oldest first, with
// who approved them so far.
func (l *Ledger) ReleaseRequests(ctx context.Context) ([]ReleaseRequest, error) {
	// A request of a file deleted from quarantine since can no longer be
	// approved: it is not listed.
	rows, err := l.reads.QueryContext(ctx, `SELECT r.transfer_id, r.requester, r.reason, r.skip_rescan, r.requested_at
		FROM release_requests r JOIN transfers t ON t.id = r.transfer_id
		WHERE t.state = 'quarantined' AND t.destination <> '' ORDER BY r.requested_at, r.transfer_id`)
	if err != nil {
		return nil, fmt.Errorf("list release requests: %w", err)
	}
	var reqs []ReleaseRequest
	for rows.Next() {
		r, err := scanRelease(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("list release requests: %w", err)
		}
		reqs = append(reqs, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list release requests: %w", err)
	}
	for i := range reqs {
		if reqs[i].Approvers, err = releaseApprovers(ctx, l.reads, reqs[i].TransferID); err != nil {
			return nil, fmt.Errorf("list release requests: %w", err)
		}
	}
	return reqs, nil
}

// ReleaseRequested returns the pending release request of transfer id,
// or ErrNoRelease.
func (l *Ledger) ReleaseRequested(ctx context.Context, id string) (ReleaseRequest, error) {
	r, err := scanRelease(l.reads.QueryRowContext(ctx, sqlReleaseRequest, id))
	if errors.Is(err, sql.ErrNoRows) {
		return ReleaseRequest{}, ErrNoRelease
	}
	return r, err
}

// heldInQuarantine reads transfer id in tx and checks its file is still
// held in quarantine.
func (l *Ledger) heldInQuarantine(ctx context.Context, tx *sql.Tx, id string) (Transfer, error) {
	t, err := l.getTransfer(ctx, tx, id)
	switch {
	case err != nil:
		return Transfer{}, err
	case t.State != Quarantined:
		return Transfer{}, fmt.Errorf("%w: state is %s, not %s", ErrStateConflict, t.State, Quarantined)
	case t.Destination == "":
		return Transfer{}, fmt.Errorf("%w: the quarantined file was deleted", ErrStateConflict)
	}
	return t, nil
}

const sqlReleaseRequest = `SELECT transfer_id, requester, reason, skip_rescan, requested_at
	FROM release_requests WHERE transfer_id = $1`

func releaseRequest(ctx context.Context, tx *sql.Tx, id string) (ReleaseRequest, error) {
	r, err := scanRelease(tx.QueryRowContext(ctx, sqlReleaseRequest, id))
	if errors.Is(err, sql.ErrNoRows) {
		return ReleaseRequest{}, ErrNoRelease
	}
	return r, err
}

func scanRelease(row interface{ Scan(...any) error }) (ReleaseRequest, error) {
	var (
		r    ReleaseRequest
		skip int
		at   string
	)
	if err := row.Scan(&r.TransferID, &r.Requester, &r.Reason, &skip, &at); err != nil {
		return ReleaseRequest{}, err
	}
	r.SkipRescan = skip != 0
	var err error
	r.RequestedAt, err = parseTime(at)
	return r, err
}

// recordReleaseApproval adds approver's row and returns how many have
// approved the release.
func recordReleaseApproval(ctx context.Context, tx *sql.Tx, t Transfer, req ReleaseRequest, approver string) (int, error) {
	switch approver {
	case req.Requester:
		return 0, ErrOwnRequest
	case t.Supplier:
		return 0, ErrOwnApproval
	}
	return addApproval(ctx, tx, "release_approvals", t.ID, approver)
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func releaseApprovers(ctx context.Context, q querier, id string) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT approver FROM release_approvals WHERE transfer_id = $1
		ORDER BY approved_at, approver`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var who []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, err
		}
		who = append(who, a)
	}
	return who, rows.Err()
}

func closeRelease(ctx context.Context, tx *sql.Tx, id string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM release_approvals WHERE transfer_id = $1`, id); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM release_requests WHERE transfer_id = $1`, id)
	return err
}

// withDetail returns base (a copy) with more added.
func withDetail(base, more map[string]string) map[string]string {
	d := make(map[string]string, len(base)+len(more))
	maps.Copy(d, base)
	maps.Copy(d, more)
	return d
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
