package ledger

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// ResumePoint is where an interrupted upload may go on from. It is
// recorded by the Advance into Interrupted (Change.Resume) and removed by
// any Advance out of it, in the same transaction: a transfer has one
// exactly while it is interrupted.
type ResumePoint struct {
	// Size is how many bytes the landing store kept: the upload goes on
	// from this offset.
	Size int64
	// HashState is the marshalled sha256 state of those bytes (see
	// encoding.BinaryMarshaler), so the rest is hashed without reading
	// them again.
	HashState []byte
	// StoreState is what the landing store needs to append to the bytes
	// it kept; opaque here.
	StoreState string
	// ExpiresAt is when the kept bytes are deleted and the transfer fails,
	// unless it was resumed before.
	ExpiresAt time.Time
}

// ErrNoResumePoint means a transfer is not interrupted, or no longer.
var ErrNoResumePoint = errors.New("no resume point")

// ResumePoint returns where interrupted transfer id may go on from, or
// ErrNoResumePoint.
func (l *Ledger) ResumePoint(ctx context.Context, id string) (ResumePoint, error) {
	var rp ResumePoint
	var hashState, expires string
	err := l.queryRow(ctx, nil, `SELECT size, hash_state, store_state, expires_at FROM resume_points WHERE transfer_id = $1`, id).
		Scan(&rp.Size, &hashState, &rp.StoreState, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return ResumePoint{}, fmt.Errorf("transfer %s: %w", id, ErrNoResumePoint)
	}
	if err == nil {
		rp.HashState, err = hashStateEncoding.DecodeString(hashState)
	}
	if err == nil {
		rp.ExpiresAt, err = parseTime(expires)
	}
	if err != nil {
		return ResumePoint{}, fmt.Errorf("resume point of transfer %s: %w", id, err)
	}
	return rp, nil
}

// saveResumePoint keeps the transfer's resume point as its move leaves it:
// the one ch brings, if any, replacing whatever it had.
func saveResumePoint(ctx context.Context, tx *sql.Tx, id string, rp *ResumePoint) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM resume_points WHERE transfer_id = $1`, id); err != nil || rp == nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO resume_points (transfer_id, size, hash_state, store_state, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		id, rp.Size, hashStateEncoding.EncodeToString(rp.HashState), rp.StoreState, formatTime(rp.ExpiresAt))
	return err
}

// hashStateEncoding keeps a marshalled hash state in a text column.
var hashStateEncoding = base64.StdEncoding
