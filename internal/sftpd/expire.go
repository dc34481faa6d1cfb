package sftpd

import (
	"context"
	"fmt"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/storage"
)

// The bytes kept for an interrupted upload go, and its row fails, when its
// resume window ends, when the same path was uploaded again and received
// since (the client started over), or when the supplier removes it. Every
// node looks; the move out of interrupted is conditional, so two nodes
// never both act on one upload.

// sweepInterval is how often a node looks for interrupted uploads to end
// and for silent nodes' uploads to recover.
const sweepInterval = time.Minute

func (s *Server) sweepEvery(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		s.expireInterrupted(ctx, time.Now())
		s.recoverSilentNodes(ctx, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// replacedStates are the states of an upload that replaces an interrupted
// one of the same path: it was received whole.
var replacedStates = []ledger.State{ledger.Received, ledger.Scanning, ledger.Delivering, ledger.Delivered, ledger.Quarantined}

// expireInterrupted ends the interrupted uploads that may no longer be
// resumed at now.
func (s *Server) expireInterrupted(ctx context.Context, now time.Time) {
	trs, err := s.ledger.List(ctx, ledger.Filter{Direction: ledger.Ingress, States: []ledger.State{ledger.Interrupted}})
	if err != nil {
		s.log.Error("list interrupted uploads", "err", err)
		return
	}
	for _, tr := range trs {
		rp, err := s.ledger.ResumePoint(ctx, tr.ID)
		if err != nil {
			continue // resumed or ended meanwhile
		}
		reason := ""
		if now.After(rp.ExpiresAt) {
			reason = fmt.Sprintf("not resumed by %s, the end of its resume window: the bytes kept for it are deleted", rp.ExpiresAt.UTC().Format(time.RFC3339))
		} else if newer, err := s.ledger.List(ctx, ledger.Filter{Direction: ledger.Ingress, Supplier: tr.Supplier, Path: tr.Path,
			States: replacedStates, UpdatedSince: tr.CreatedAt, Limit: 1}); err == nil && len(newer) > 0 && newer[0].CreatedAt.After(tr.CreatedAt) {
			reason = "uploaded again from the start and received: the bytes kept for the interrupted upload are deleted"
		}
		if reason == "" {
			continue
		}
		if err := s.endInterrupted(ctx, tr, rp, reason, ledger.Event{Kind: "upload.expire", Actor: "system"}); err != nil {
			s.log.Error("end an interrupted upload", "transfer_id", tr.ID, "err", err) // the next sweep tries again
		}
	}
}

// endInterrupted fails interrupted upload tr with reason and deletes the
// bytes kept for it. The row moves first: a session resuming tr meanwhile
// wins the move, and then finds the bytes it needs.
func (s *Server) endInterrupted(ctx context.Context, tr ledger.Transfer, rp ledger.ResumePoint, reason string, ev ledger.Event) error {
	ev.Detail = map[string]string{"reason": "abandoned", "error": reason, "size": fmt.Sprint(rp.Size)}
	if _, err := s.ledger.Advance(ctx, tr.ID, []ledger.State{ledger.Interrupted}, ledger.Failed, ledger.Change{Error: &reason}, ev); err != nil {
		return fmt.Errorf("record the end of interrupted upload %s: %w", tr.ID, err)
	}
	if err := s.landing.DiscardSuspended(ctx, tr.LandingKey, storage.Checkpoint{Size: rp.Size, State: rp.StoreState}); err != nil {
		s.log.Error("discard the bytes kept to resume", "transfer_id", tr.ID, "err", err)
	}
	s.log.Warn("interrupted upload ended", "transfer_id", tr.ID, "user", tr.Supplier, "path", tr.Path, "size", rp.Size, "reason", reason)
	return nil
}

// removeInterrupted lets the supplier end its interrupted upload tr.
func (s *session) removeInterrupted(tr ledger.Transfer) error {
	rp, err := s.srv.ledger.ResumePoint(s.ctx, tr.ID)
	if err != nil {
		return errResumedElsewhere
	}
	return s.srv.endInterrupted(s.ctx, tr, rp, "removed by the supplier: the bytes kept to resume it are deleted",
		s.event("upload.fail", nil))
}

// recoverSilentNodes recovers the uploads of the nodes whose heartbeat (see
// internal/pipeline) is older than pipeline.rescue_after at now, as each
// would on its own restart: a node that died and stays down would
// otherwise leave its uploads receiving for good, listed as on their way.
// A node that never recorded a heartbeat is left alone. The upload of a
// node that is alive but cut off from the database then fails to settle,
// its client told so; nothing partial is ever handed on.
func (s *Server) recoverSilentNodes(ctx context.Context, now time.Time) {
	if s.rescueAfter <= 0 {
		return
	}
	seen, err := s.ledger.NodesSeen(ctx)
	if err != nil {
		s.log.Error("look for silent nodes", "err", err)
		return
	}
	for node, at := range seen {
		if node == s.node || now.Sub(at) < s.rescueAfter {
			continue
		}
		reason := fmt.Sprintf("interrupted: node %s stopped during the upload (silent since %s)", node, at.UTC().Format(time.RFC3339))
		if err := s.recoverNode(ctx, node, reason); err != nil {
			s.log.Error("recover the uploads of a silent node", "node", node, "err", err)
		}
	}
}
