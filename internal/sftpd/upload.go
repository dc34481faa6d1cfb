package sftpd

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/storage"
)

// bookkeepingTimeout bounds the ledger and store calls that settle an upload
// after its connection has gone.
const bookkeepingTimeout = 30 * time.Second

// upload streams one file into a staged landing object. Out-of-order writes
// pass through a bounded reorder window; the sha256 is computed on the way.
type upload struct {
	s      *session
	tr     ledger.Transfer
	staged *storage.Staged
	sum    hash.Hash
	win    *reorderWindow

	release       func() // gives back the upload's memory reservation
	releaseHandle func() // gives back its handle (see takeHandle); nil before the open is answered

	// The ledger learns of an upload when it ends, or recordAfter after it
	// began if it has not ended by then: most files take less, and one
	// transaction then records the whole upload.
	mu       sync.Mutex
	start    ledger.Event // the upload.start event
	begun    bool         // the transfer is recorded, in state receiving
	settled  bool         // the upload's outcome is recorded, or being recorded
	recorder *time.Timer

	cutOff      atomic.Bool // the connection ended with the upload open: it may be resumed
	resumedFrom int64       // the bytes an interrupted upload had kept when this session resumed it

	closeOnce sync.Once
	closeErr  error
}

// recordAfter is how long an upload runs before it is recorded as
// receiving: until then only its session knows of it.
const recordAfter = time.Second

var (
	_ io.WriterAt        = (*upload)(nil)
	_ io.ReaderAt        = (*upload)(nil)
	_ io.Closer          = (*upload)(nil)
	_ sftp.TransferError = (*upload)(nil)
)

func (s *session) startUpload(r *sftp.Request) (*upload, error) {
	loc, err := s.resolve(r.Filepath)
	if err != nil {
		return nil, err
	}
	switch {
	case loc.area != areaUpload:
		return nil, fmt.Errorf("uploads go into /%s: %w", uploadDir, ErrReadOnly)
	case loc.rel == "/":
		return nil, ErrIsDir
	}
	if err := checkNotReceipt(loc.rel); err != nil {
		return nil, err
	}
	if err := s.needDir(path.Dir(loc.rel)); err != nil {
		return nil, err
	}
	if isDir, err := s.isDir(loc.rel); err != nil || isDir {
		return nil, cmp.Or(err, ErrIsDir)
	}
	flags := r.Pflags()
	if !flags.Trunc && !flags.Excl && s.srv.resumeWindow > 0 {
		if u, err := s.resumeAt(loc.rel); err != nil || u != nil {
			return u, err
		}
	}
	if flags.Append {
		if err := s.checkAppend(loc.rel); err != nil {
			return nil, err
		}
	}
	if err := s.checkOverwrite(loc.rel, flags.Excl); err != nil {
		return nil, err
	}
	return s.newUpload(loc.rel)
}

// checkAppend refuses to append to an upload that is not interrupted: an
// upload is received whole, or goes on from where it was cut off. Where no
// file is listed, an append creates one, as O_APPEND|O_CREAT does.
func (s *session) checkAppend(p string) error {
	tr, exists, err := s.fileAt(p)
	if err != nil || !exists {
		return err
	}
	return fmt.Errorf("appending to a file uploaded already (%s); only an interrupted upload goes on: %w", tr.State, ErrUnsupported)
}

// newUpload starts a fresh upload of p.
func (s *session) newUpload(p string) (*upload, error) {
	prefix, err := s.landingPrefix()
	if err != nil {
		return nil, err
	}
	release, err := s.reserveMemory()
	if err != nil {
		return nil, err
	}
	u := &upload{s: s, sum: sha256.New(), release: release, start: s.event("upload.start", nil)}
	u.tr = ledger.NewTransfer(ledger.Transfer{
		Direction: ledger.Ingress,
		Supplier:  s.supplier.Name,
		Path:      p,
		Node:      s.srv.node,
		RemoteIP:  s.remoteIP,
	})
	u.tr.LandingKey = prefix + u.tr.ID
	if u.staged, err = s.srv.landing.StageResumable(s.ctx, u.tr.LandingKey, s.srv.maxFileSize); err != nil {
		u.fail(err, 0)
		release()
		return nil, err
	}
	if tr, ok := s.heldAt(p); ok {
		// Opened again before it was renamed: the client rewrites or
		// resumes it, so the bytes held are not the file. Only an upload
		// that completes may be renamed into place.
		s.discardHeld(tr, "opened for writing again before it was renamed")
	}
	s.track(u)
	u.recorder = time.AfterFunc(s.srv.recordAfter, u.begin)
	u.win = newReorderWindow(u, 0, s.srv.maxFileSize, s.srv.reorderWindow, s.srv.reorderStall)
	s.log.Info("upload started", "transfer_id", u.tr.ID, "path", u.tr.Path)
	return u, nil
}

// maxSessionUploads bounds the uploads one session may have open at once;
// it also bounds how far a session may go beyond the memory budget.
const maxSessionUploads = 16

// reserveMemory counts a new upload of this session and takes its memory
// from the upload memory budget, waiting (the client sees a slow open) while
// other uploads hold it, for a while, then refusing the upload as busy. The
// returned func undoes both.
//
// A session that already has an upload open never waits: its requests
// share one set of workers, so waiting for memory only its own uploads
// could free would deadlock it. It goes beyond the budget instead, by at
// most maxSessionUploads uploads.
func (s *session) reserveMemory() (release func(), err error) {
	s.mu.Lock()
	if s.uploads >= maxSessionUploads {
		s.mu.Unlock()
		return nil, fmt.Errorf("more than %d uploads open at once in one session: %w", maxSessionUploads, ErrUnsupported)
	}
	s.uploads++
	mine := s.uploads
	s.mu.Unlock()
	done := func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.uploads--
	}

	giveBack, err := s.srv.memory.reserve(s.ctx, s.supplier.Name, mine > 1, func() {
		s.srv.metrics.memoryWaits.Inc()
		s.log.Info("upload waits for memory held by other uploads")
	})
	if err != nil {
		done()
		return nil, err
	}
	return func() {
		giveBack()
		done()
	}, nil
}

// Write receives the in-order stream from the reorder window.
func (u *upload) Write(p []byte) (int, error) {
	n, err := u.staged.Write(p)
	u.sum.Write(p[:n])
	u.s.srv.metrics.uploadBytes.Add(float64(n))
	return n, err
}

func (u *upload) WriteAt(p []byte, off int64) (int, error) {
	n, err := u.win.WriteAt(u.s.ctx, p, off)
	if err != nil && u.resumedFrom > 0 && off < u.resumedFrom {
		err = fmt.Errorf("%w: this upload was interrupted and goes on from byte %d; to send the file again whole, open it truncating or remove it first",
			err, u.resumedFrom)
	}
	return n, statusError(err)
}

// ReadAt refuses: uploaded data is never served back.
func (u *upload) ReadAt([]byte, int64) (int, error) { return 0, statusError(ErrWriteOnly) }

// TransferError is called by pkg/sftp when the connection ends with the
// file still open.
func (u *upload) TransferError(err error) {
	if why := u.s.live.revokedFor(); why != "" {
		u.win.Abort(fmt.Errorf("session revoked (%s) during the upload", why))
		return
	}
	u.cutOff.Store(true)
	if u.s.idledOut.Load() {
		u.win.Abort(fmt.Errorf("session closed: no request for %s (idle timeout)", u.s.srv.idleTimeout))
		return
	}
	if u.s.srv.sessionsClosed() {
		u.win.Abort(errDrained)
		return
	}
	u.win.Abort(fmt.Errorf("connection lost during upload: %w", err))
}

// Close settles the upload: commit and record it as received, or discard it
// and record why it failed.
func (u *upload) Close() error {
	u.closeOnce.Do(func() {
		u.closeErr = u.finish()
		u.release()
		if u.releaseHandle != nil {
			u.releaseHandle()
		}
	})
	return u.closeErr
}

func (u *upload) finish() error {
	size, err := u.win.Finish()
	if err != nil && u.resumable(size) {
		return u.interrupt(err, size)
	}
	if err != nil {
		u.staged.Abort()
		u.fail(err, size)
		return statusError(err)
	}
	if err := u.staged.Commit(); err != nil {
		u.fail(err, size)
		return statusError(err)
	}
	s := u.s
	ctx, cancel := s.bookkeepingContext()
	defer cancel()
	sha := hex.EncodeToString(u.sum.Sum(nil))
	held := s.srv.isTempName(u.tr.Path)
	to := ledger.Received
	if held {
		to = ledger.Receiving
	}
	tr, err := u.settle(ctx, to, ledger.Change{Size: &size, SHA256: &sha, InTx: s.srv.handoffIf(!held)},
		s.event("upload.finish", map[string]string{"size": fmt.Sprint(size), "sha256": sha, "held": fmt.Sprint(held)}))
	if err != nil {
		err = fmt.Errorf("record finished upload: %w", err)
		u.discard(ctx)
		u.fail(err, size)
		return statusError(err)
	}
	s.srv.metrics.uploads.WithLabelValues("received").Inc()
	s.log.Info("upload finished", "transfer_id", tr.ID, "path", tr.Path, "size", size, "sha256", sha, "held", held)
	if held {
		s.hold(tr)
	}
	return nil
}

// fail records the upload as failed, with the bytes it received in order
// before it failed, and removes whatever it staged. The row keeps no
// sha256: the hash of a part is no file's, and an empty one tells that the
// upload never completed (see pipeline.Operator.Retry).
func (u *upload) fail(cause error, received int64) {
	s := u.s
	ctx, cancel := s.bookkeepingContext()
	defer cancel()
	u.discard(ctx)
	reason := cause.Error()
	ev := s.event("upload.fail", map[string]string{"reason": refusalReason(cause), "error": reason, "size": fmt.Sprint(received)})
	if _, err := u.settle(ctx, ledger.Failed, ledger.Change{Error: &reason, Size: &received}, ev); err != nil {
		s.log.Error("record failed upload", "transfer_id", u.tr.ID, "err", err)
	}
	s.srv.metrics.uploads.WithLabelValues("failed").Inc()
	s.log.Warn("upload failed", "transfer_id", u.tr.ID, "path", u.tr.Path, "size", received, "reason", refusalReason(cause), "err", cause)
}

// begin records the upload as receiving, unless it is settled already.
func (u *upload) begin() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.settled || u.begun {
		return
	}
	ctx, cancel := u.s.bookkeepingContext()
	defer cancel()
	if _, err := u.s.srv.ledger.Begin(ctx, u.tr, u.start); err != nil {
		// Not fatal: settling the upload records it whole instead.
		u.s.log.Error("record upload", "transfer_id", u.tr.ID, "err", err)
		return
	}
	u.begun = true
	u.s.forget(u)
}

// settle records the upload's move from receiving into state to, and the
// upload itself with it if begin has not.
func (u *upload) settle(ctx context.Context, to ledger.State, ch ledger.Change, ev ledger.Event) (ledger.Transfer, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.recorder != nil {
		u.recorder.Stop()
	}
	u.settled = true
	u.s.forget(u)
	if u.begun {
		return u.s.srv.ledger.Advance(ctx, u.tr.ID, []ledger.State{ledger.Receiving}, to, ch, ev)
	}
	tr, err := u.s.srv.ledger.Record(ctx, u.tr, u.start, to, ch, ev)
	u.begun = err == nil
	return tr, err
}

// recordOwn records the session's open uploads that the ledger does not
// know of yet, so that the session finds them in what it asks next.
func (s *session) recordOwn() {
	s.mu.Lock()
	us := slices.Collect(maps.Keys(s.unrecorded))
	s.mu.Unlock()
	for _, u := range us {
		u.begin()
	}
}

// landingPrefix is where the session's uploads land. The session's first
// upload records the session, so that a crash cannot leave what lands there
// unaccounted for (see ledger.UploadSession).
func (s *session) landingPrefix() (string, error) {
	s.uploadsMu.Lock()
	defer s.uploadsMu.Unlock()
	if s.uploadSession.ID == "" {
		us, err := s.srv.ledger.StartUploads(s.ctx, s.srv.node, s.supplier.Name)
		if err != nil {
			return "", fmt.Errorf("record upload session: %w", err)
		}
		s.uploadSession = us
	}
	return s.uploadSession.LandingPrefix(), nil
}

// endUploads forgets the session's uploads once all are recorded.
func (s *session) endUploads() {
	s.uploadsMu.Lock()
	defer s.uploadsMu.Unlock()
	if s.uploadSession.ID == "" {
		return
	}
	ctx, cancel := s.bookkeepingContext()
	defer cancel()
	if err := s.srv.ledger.EndUploads(ctx, s.uploadSession.ID); err != nil {
		// Harmless: the next restart finds every upload of it recorded.
		s.log.Error("end upload session", "err", err)
	}
}

func (s *session) track(u *upload) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unrecorded == nil {
		s.unrecorded = make(map[*upload]bool)
	}
	s.unrecorded[u] = true
}

func (s *session) forget(u *upload) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.unrecorded, u)
}

func (u *upload) discard(ctx context.Context) {
	if _, err := u.s.srv.landing.DeletePrefix(ctx, u.tr.LandingKey); err != nil {
		u.s.log.Error("discard staged upload", "transfer_id", u.tr.ID, "err", err)
	}
}

// handoffIf returns the hook that hands a received upload on, or nil when
// the upload is not received yet (it is held under a temporary name).
func (srv *Server) handoffIf(received bool) func(context.Context, *sql.Tx, ledger.Transfer) error {
	if !received {
		return nil
	}
	return srv.handoff
}

// bookkeepingContext outlives the connection: an upload cut off by a
// dropped connection must still be recorded.
func (s *session) bookkeepingContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(s.ctx), bookkeepingTimeout)
}

func (s *session) event(kind string, detail map[string]string) ledger.Event {
	return ledger.Event{Kind: kind, Actor: s.supplier.Name, RemoteIP: s.remoteIP, ConnID: s.connID, Detail: detail}
}

func (s *session) listUpload(p string) ([]os.FileInfo, error) {
	isDir, err := s.isDir(p)
	if err != nil {
		return nil, err
	}
	if !isDir {
		if _, exists, err := s.fileAt(p); err != nil || exists {
			return nil, cmp.Or(err, fmt.Errorf("not a directory: %w", ErrNotFound))
		}
		return nil, ErrNotFound
	}
	children, err := s.children(p)
	if err != nil {
		return nil, err
	}
	return sortInfos(children), nil
}

func (s *session) statUpload(p string) (os.FileInfo, error) {
	if tr, ok, err := s.receiptAt(p); err != nil || ok {
		if err != nil {
			return nil, err
		}
		return receiptInfo(tr), nil
	}
	tr, exists, err := s.fileAt(p)
	if err != nil {
		return nil, err
	}
	if exists {
		return transferInfo(tr), nil
	}
	if isDir, err := s.isDir(p); err != nil || !isDir {
		return nil, cmp.Or(err, ErrNotFound)
	}
	return dirInfo(path.Base(p), time.Now()), nil
}

// The upload area is what the ledger knows of the supplier's uploads on
// their way or settled lately (see visible.go), plus the directories the
// supplier made for them. Each question is its own narrow query, so a
// supplier with thousands of pending files costs no more per request than
// one with a few.

// isDir reports whether p is a directory: the top, one the supplier made,
// or one that holds visible uploads.
func (s *session) isDir(p string) (bool, error) {
	if p == "/" || s.srv.dirs.has(s.supplier.Name, p) {
		return true, nil
	}
	trs, err := s.srv.ledger.List(s.ctx, s.visibleFilter(ledger.Filter{PathPrefix: p + "/", Limit: 1}))
	return len(trs) > 0, wrapArea(err)
}

// needDir returns ErrNotFound, naming p, unless p is a directory.
func (s *session) needDir(p string) error {
	isDir, err := s.isDir(p)
	if err != nil || isDir {
		return err
	}
	return fmt.Errorf("directory %q: %w", p, ErrNotFound)
}

// children lists the entries directly below dir: the newest upload per
// name, and sub-directories.
func (s *session) children(dir string) ([]os.FileInfo, error) {
	prefix := strings.TrimSuffix(dir, "/") + "/"
	trs, err := s.srv.ledger.List(s.ctx, s.visibleFilter(ledger.Filter{PathPrefix: prefix}))
	if err != nil {
		return nil, wrapArea(err)
	}
	seen := make(map[string]bool)
	var out []os.FileInfo
	add := func(name string, fi os.FileInfo) {
		if !seen[name] {
			seen[name] = true
			out = append(out, fi)
		}
	}
	var files []ledger.Transfer // directly below dir, newest first
	for _, tr := range trs {
		name, below, nested := strings.Cut(tr.Path[len(prefix):], "/")
		if nested && below != "" {
			add(name, dirInfo(name, tr.UpdatedAt))
			continue
		}
		files = append(files, tr)
	}
	// Receipts are not listed, only served by name: a listing shows what
	// the supplier uploaded, so that a sync tool comparing it with the
	// source (rclone check, rclone sync, lftp mirror --delete) finds no
	// file it did not send.
	for _, tr := range shownFiles(files) {
		add(path.Base(tr.Path), transferInfo(tr))
	}
	for _, d := range s.srv.dirs.below(s.supplier.Name, dir) {
		add(path.Base(d), dirInfo(path.Base(d), time.Now()))
	}
	return out, nil
}

func wrapArea(err error) error {
	if err != nil {
		return fmt.Errorf("read upload area: %w", err)
	}
	return nil
}
