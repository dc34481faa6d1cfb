package sftpd

import (
	"cmp"
	"fmt"
	"path"

	"github.com/airlock-gw/airlock/internal/ledger"
)

// Uploads under a temporary name (sftp.temp_patterns, such as WinSCP's
// *.filepart) are held when they complete, until the client renames them
// into place: only then are they received and handed on.

// hold keeps a finished upload under a temporary name until the client
// renames it.
func (s *session) hold(tr ledger.Transfer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held[tr.ID] = tr
}

func (s *session) heldAt(p string) (ledger.Transfer, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, tr := range s.held {
		if tr.Path == p {
			return tr, true
		}
	}
	return ledger.Transfer{}, false
}

// releaseHeld fails the uploads still under a temporary name when the
// session ends: the client never completed them.
func (s *session) releaseHeld() {
	s.mu.Lock()
	held := s.held
	s.held = nil
	s.mu.Unlock()
	for _, tr := range held {
		s.dropHeld(tr, "the session ended before the upload was renamed from its temporary name")
	}
}

// discardHeld stops holding tr and drops it.
func (s *session) discardHeld(tr ledger.Transfer, reason string) {
	s.mu.Lock()
	delete(s.held, tr.ID)
	s.mu.Unlock()
	s.dropHeld(tr, reason)
}

func (s *session) dropHeld(tr ledger.Transfer, reason string) {
	ctx, cancel := s.bookkeepingContext()
	defer cancel()
	if _, err := s.srv.landing.DeletePrefix(ctx, tr.LandingKey); err != nil {
		s.log.Error("discard held upload", "transfer_id", tr.ID, "err", err)
	}
	if _, err := s.srv.ledger.Advance(ctx, tr.ID, []ledger.State{ledger.Receiving}, ledger.Failed,
		ledger.Change{Error: &reason}, s.event("upload.fail", map[string]string{"reason": "abandoned", "error": reason})); err != nil {
		s.log.Error("record abandoned upload", "transfer_id", tr.ID, "err", err)
	}
	s.log.Warn("upload abandoned", "transfer_id", tr.ID, "path", tr.Path, "reason", reason)
}

// rename moves a held upload to its final name, which hands it on.
func (s *session) rename(from, to string) error {
	tr, ok := s.heldAt(from)
	if !ok {
		return s.notHeld(from, fmt.Errorf("renaming directories: %w", ErrUnsupported))
	}
	if err := checkNotReceipt(to); err != nil {
		return err
	}
	if err := s.needDir(path.Dir(to)); err != nil {
		return err
	}
	if isDir, err := s.isDir(to); err != nil || isDir {
		return cmp.Or(err, ErrIsDir)
	}
	if err := s.checkOverwrite(to, false); err != nil {
		return err
	}
	held := s.srv.isTempName(to)
	state := ledger.Received
	if held {
		state = ledger.Receiving
	}
	updated, err := s.srv.ledger.Advance(s.ctx, tr.ID, []ledger.State{ledger.Receiving}, state,
		ledger.Change{Path: &to, InTx: s.srv.handoffIf(!held)}, s.event("upload.rename", map[string]string{"from": from, "to": to}))
	if err != nil {
		return fmt.Errorf("record rename: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.held, tr.ID)
	if held {
		s.held[tr.ID] = updated
	}
	s.log.Info("upload renamed", "transfer_id", tr.ID, "from", from, "to", to, "held", held)
	return nil
}

// remove lets a client drop its own upload that is still under a temporary
// name, or take a settled one out of its listing (see removeSettled);
// anything on its way stays.
func (s *session) remove(p string) error {
	if tr, ok := s.heldAt(p); ok {
		s.discardHeld(tr, "removed by the supplier before it was renamed")
		return nil
	}
	if _, ok, err := s.receiptAt(p); err != nil || ok {
		return cmp.Or(err, fmt.Errorf("receipts: %w", ErrReadOnly))
	}
	if tr, ok, err := s.fileAt(p); err != nil {
		return err
	} else if ok && tr.State == ledger.Interrupted {
		return s.removeInterrupted(tr)
	}
	if found, err := s.removeSettled(p); err != nil || found {
		return err
	}
	return s.notHeld(p, ErrIsDir)
}

// notHeld explains why p, which is no upload of this session still under a
// temporary name, cannot be renamed or removed: it was handed on already,
// it failed, it is a directory (onDir), or it does not exist.
func (s *session) notHeld(p string, onDir error) error {
	if tr, exists, err := s.fileAt(p); err != nil || exists {
		if err == nil && tr.State == ledger.Failed {
			return ErrFailed // not "received": the client must send it again
		}
		return cmp.Or(err, ErrProcessing)
	}
	if isDir, err := s.isDir(p); err != nil || isDir {
		return cmp.Or(err, onDir)
	}
	return ErrNotFound
}
