package sftpd

import (
	"context"
	"crypto/sha256"
	"encoding"
	"errors"
	"fmt"
	"hash"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/storage"
)

// An upload cut off (the connection lost, the client killed, the session
// idle) is interrupted rather than failed: its landing store keeps the bytes
// received in order, the ledger the sha256 state of those bytes, for
// sftp.resume_window. The supplier's listing shows it at the length kept.
// A client that opens the path again without truncating it (OpenSSH reput,
// WinSCP and paramiko reopen-and-seek, append) continues it from there; a
// write before that length, or leaving a gap, is refused as for any upload,
// and only an upload that completes is ever received or renamed into place.

// resumeAt continues the newest interrupted upload at p, if there is one:
// nil, nil when there is none.
func (s *session) resumeAt(p string) (*upload, error) {
	trs, err := s.srv.ledger.List(s.ctx, ledger.Filter{
		Direction: ledger.Ingress, Supplier: s.supplier.Name, Path: p, States: []ledger.State{ledger.Interrupted}, Limit: 1,
	})
	if err != nil || len(trs) == 0 {
		return nil, wrapArea(err)
	}
	rp, err := s.srv.ledger.ResumePoint(s.ctx, trs[0].ID)
	if errors.Is(err, ledger.ErrNoResumePoint) {
		return nil, errResumedElsewhere
	}
	if err != nil {
		return nil, fmt.Errorf("read resume point: %w", err)
	}
	sum := sha256.New()
	if err := sum.(encoding.BinaryUnmarshaler).UnmarshalBinary(rp.HashState); err != nil {
		return nil, fmt.Errorf("resume point of %s: hash state: %w", trs[0].ID, err)
	}
	release, err := s.reserveMemory()
	if err != nil {
		return nil, err
	}
	u, err := s.claim(trs[0], rp, sum)
	if err != nil {
		release()
		return nil, err
	}
	u.release = release
	return u, nil
}

// errResumedElsewhere refuses to resume an upload another session resumes.
var errResumedElsewhere = fmt.Errorf("the interrupted upload is being resumed by another session: %w", ErrProcessing)

// claim takes interrupted upload tr over for this session and reopens its
// kept bytes. Claiming first makes the claim the one place two sessions
// resuming at once are told apart.
func (s *session) claim(tr ledger.Transfer, rp ledger.ResumePoint, sum hash.Hash) (*upload, error) {
	noError := ""
	claimed, err := s.srv.ledger.Advance(s.ctx, tr.ID, []ledger.State{ledger.Interrupted}, ledger.Receiving,
		ledger.Change{Node: &s.srv.node, Error: &noError}, s.event("upload.resume", map[string]string{"size": fmt.Sprint(rp.Size)}))
	if errors.Is(err, ledger.ErrStateConflict) {
		return nil, errResumedElsewhere
	}
	if err != nil {
		return nil, fmt.Errorf("record resumed upload: %w", err)
	}
	u := &upload{s: s, tr: claimed, sum: sum, begun: true, resumedFrom: rp.Size}
	cp := storage.Checkpoint{Size: rp.Size, State: rp.StoreState}
	if u.staged, err = s.srv.landing.Resume(s.ctx, tr.LandingKey, s.srv.maxFileSize, cp); err != nil {
		ctx, cancel := s.bookkeepingContext()
		defer cancel()
		u.dropKept(ctx, cp)
		u.fail(fmt.Errorf("reopen the bytes kept: %w", err), rp.Size)
		return nil, err
	}
	u.win = newReorderWindow(u, rp.Size, s.srv.maxFileSize, s.srv.reorderWindow, s.srv.reorderStall)
	s.srv.metrics.uploads.WithLabelValues("resumed").Inc()
	s.log.Info("upload resumed", "transfer_id", tr.ID, "path", tr.Path, "from", rp.Size)
	return u, nil
}

// resumable reports whether the upload, ending with size bytes received in
// order, may be kept for its client to resume: it was cut off, not refused.
func (u *upload) resumable(size int64) bool {
	return u.cutOff.Load() && u.s.srv.resumeWindow > 0 && size > 0
}

// interrupt keeps what the upload received for its client to resume, and
// records it as interrupted; failing that, it fails the upload.
func (u *upload) interrupt(cause error, size int64) error {
	s := u.s
	ctx, cancel := s.bookkeepingContext()
	defer cancel()
	rp, err := u.keep(ctx, size)
	if err != nil {
		u.fail(fmt.Errorf("%w (and keeping it to resume failed: %w)", cause, err), size)
		return statusError(cause)
	}
	reason := cause.Error()
	ev := s.event("upload.interrupt", map[string]string{
		"error": reason, "size": fmt.Sprint(size), "resume_until": rp.ExpiresAt.UTC().Format(time.RFC3339),
	})
	if _, err := u.settle(ctx, ledger.Interrupted, ledger.Change{Size: &size, Error: &reason, Resume: &rp}, ev); err != nil {
		u.dropKept(ctx, storage.Checkpoint{Size: rp.Size, State: rp.StoreState})
		u.fail(fmt.Errorf("%w (and recording it to resume failed: %w)", cause, err), size)
		return statusError(cause)
	}
	s.srv.metrics.uploads.WithLabelValues("interrupted").Inc()
	s.log.Warn("upload interrupted; kept to resume", "transfer_id", u.tr.ID, "path", u.tr.Path, "size", size,
		"resume_until", rp.ExpiresAt, "err", cause)
	return statusError(cause)
}

// keep suspends the staged write and returns its resume point.
func (u *upload) keep(ctx context.Context, size int64) (ledger.ResumePoint, error) {
	state, err := u.sum.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		u.staged.Abort()
		return ledger.ResumePoint{}, fmt.Errorf("save hash state: %w", err)
	}
	cp, err := u.staged.Suspend(ctx)
	if err != nil {
		return ledger.ResumePoint{}, err
	}
	if cp.Size != size {
		u.dropKept(ctx, cp)
		return ledger.ResumePoint{}, fmt.Errorf("the store kept %d bytes of the %d received", cp.Size, size)
	}
	return ledger.ResumePoint{Size: size, HashState: state, StoreState: cp.State, ExpiresAt: time.Now().Add(u.s.srv.resumeWindow)}, nil
}

func (u *upload) dropKept(ctx context.Context, cp storage.Checkpoint) {
	if err := u.s.srv.landing.DiscardSuspended(ctx, u.tr.LandingKey, cp); err != nil {
		u.s.log.Error("discard the bytes kept to resume", "transfer_id", u.tr.ID, "err", err)
	}
}
