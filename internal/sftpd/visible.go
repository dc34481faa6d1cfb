package sftpd

import (
	"fmt"
	"os"
	"path"
	"slices"
	"time"

	"github.com/pkg/sftp"

	"github.com/airlock-gw/airlock/internal/ledger"
)

// What a supplier uploaded stays in its listing: an upload on its way for
// as long as it is, a settled one (delivered, quarantined or failed) for
// sftp.receipt_retention, with its size and the modification time its
// client set, until the supplier removes it. Sync tools (rclone, lftp mirror) stat what they sent and
// compare size and time on their next run: a file that vanished once
// delivered was sent again, and delivered again. Entries are never
// readable: a read is refused as for any upload.

// visibleFilter narrows f to the supplier's visible uploads: pending ones,
// and settled ones within the retention that it has not removed.
func (s *session) visibleFilter(f ledger.Filter) ledger.Filter {
	// Downloads are transfers too, of the same paths: only uploads show here.
	f.Direction, f.Supplier, f.States, f.Shown = ledger.Ingress, s.supplier.Name, pendingStates, true
	if s.srv.receiptRetention > 0 {
		f.Recent = ledger.RecentStates{States: settledStates, Since: s.receiptsSince()}
	}
	return f
}

// fileScan bounds the uploads of one path that fileAt reads to choose the
// one shown: more failed uploads than this since the newest delivered one
// show the newest failed one.
const fileScan = 16

// fileAt returns the upload shown at p, if any.
func (s *session) fileAt(p string) (ledger.Transfer, bool, error) {
	trs, err := s.srv.ledger.List(s.ctx, s.visibleFilter(ledger.Filter{Path: p, Limit: fileScan}))
	if err != nil || len(trs) == 0 {
		return ledger.Transfer{}, false, wrapArea(err)
	}
	return shownFiles(trs)[0], true, nil
}

// shownFiles picks, from trs (newest first), the upload shown for each
// path: the newest one on its way or delivered, so that a failed or
// quarantined upload does not hide the copy that did arrive; failing
// that, the newest one. Its receipt tells what became of each.
func shownFiles(trs []ledger.Transfer) []ledger.Transfer {
	best := make(map[string]int) // path → index in out
	var out []ledger.Transfer
	for _, tr := range trs {
		i, seen := best[tr.Path]
		switch {
		case !seen:
			best[tr.Path] = len(out)
			out = append(out, tr)
		case !arrived(out[i]) && arrived(tr):
			out[i] = tr
		}
	}
	return out
}

// arrived reports whether tr is on its way or delivered.
func arrived(tr ledger.Transfer) bool {
	return tr.State == ledger.Delivered || slices.Contains(pendingStates, tr.State)
}

func transferInfo(tr ledger.Transfer) os.FileInfo {
	mod := tr.UpdatedAt
	if tr.MTime != nil {
		mod = *tr.MTime
	}
	return &fileInfo{name: path.Base(tr.Path), size: tr.Size, mode: 0o600, modTime: mod}
}

// setstat keeps the modification time a client sets on its upload, held,
// on its way or settled, and accepts and ignores modes and access times,
// which clients set after an upload; a size change would rewrite received
// bytes and is refused.
func (s *session) setstat(r *sftp.Request, loc location) error {
	if r.AttrFlags().Size {
		return fmt.Errorf("changing the size of a file: %w", ErrUnsupported)
	}
	tr, held := s.heldAt(loc.rel)
	if !held {
		var exists bool
		var err error
		if tr, exists, err = s.fileAt(loc.rel); err != nil {
			return err
		}
		if !exists { // a directory or a receipt has nothing to keep
			_, err = s.statUpload(loc.rel)
			return err
		}
	}
	if !r.AttrFlags().Acmodtime {
		return nil
	}
	attrs := r.Attributes()
	if attrs == nil {
		return malformed("setstat")
	}
	return s.keepMTime(tr, held, time.Unix(int64(attrs.Mtime), 0))
}

// keepMTime records mtime as tr's modification time. Only a change is
// recorded, with its audit event: a client setting the same time again
// costs a read.
func (s *session) keepMTime(tr ledger.Transfer, held bool, mtime time.Time) error {
	if tr.MTime != nil && tr.MTime.Equal(mtime) {
		return nil
	}
	updated, changed, err := s.srv.ledger.SetMTime(s.ctx, tr.ID, mtime,
		s.event("upload.mtime", map[string]string{"path": tr.Path}))
	if err != nil {
		return fmt.Errorf("record modification time: %w", err)
	}
	if changed {
		s.log.Debug("modification time set", "transfer_id", tr.ID, "path", tr.Path, "mtime", mtime)
	}
	if held {
		s.mu.Lock()
		if _, still := s.held[tr.ID]; still {
			s.held[tr.ID] = updated
		}
		s.mu.Unlock()
	}
	return nil
}

// removeSettled removes the settled uploads at p from the supplier's
// listing, each with its audit event: the delivered copy, the ledger's
// record and the receipt stay. An upload on its way cannot be removed.
// found is false when no upload is listed at p.
func (s *session) removeSettled(p string) (found bool, err error) {
	trs, err := s.srv.ledger.List(s.ctx, s.visibleFilter(ledger.Filter{Path: p, Limit: fileScan}))
	if err != nil || len(trs) == 0 {
		return false, wrapArea(err)
	}
	if slices.ContainsFunc(trs, func(tr ledger.Transfer) bool { return slices.Contains(pendingStates, tr.State) }) {
		return true, ErrProcessing
	}
	for _, tr := range trs {
		if _, _, err := s.srv.ledger.Hide(s.ctx, tr.ID, s.event("upload.hide", map[string]string{"path": p})); err != nil {
			return true, fmt.Errorf("record removal from the listing: %w", err)
		}
		s.log.Info("settled upload removed from the listing", "transfer_id", tr.ID, "path", p, "state", tr.State)
	}
	return true, nil
}
