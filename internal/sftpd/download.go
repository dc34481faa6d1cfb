package sftpd

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/airlock-gw/airlock/internal/names"
	"hash"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/storage"
)

// The download area is a read-only view of the supplier's egress store.

// egressStore is the supplier's egress store, opened once per server.
func (s *session) egressStore() (*storage.Store, error) {
	return s.srv.egress.Open(s.ctx, s.supplier.Egress.URL)
}

func downloadKey(rel string) string { return strings.TrimPrefix(rel, "/") }

func (s *session) listDownload(rel string) ([]os.FileInfo, error) {
	st, err := s.egressStore()
	if err != nil {
		return nil, err
	}
	prefix := ""
	if rel != "/" {
		prefix = downloadKey(rel) + "/"
	}
	entries, err := st.List(s.ctx, prefix)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 && rel != "/" {
		fi, err := s.statDownload(rel)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("not a directory: %w", ErrNotFound)
		}
	}
	infos := make([]os.FileInfo, 0, len(entries))
	for _, e := range entries {
		name := path.Base(strings.TrimSuffix(e.Key, "/"))
		// Objects whose names the policy refuses could never be fetched.
		if names.Check(name) != nil {
			continue
		}
		if e.IsDir {
			infos = append(infos, &fileInfo{name: name, mode: os.ModeDir | 0o555, modTime: time.Now()})
			continue
		}
		infos = append(infos, &fileInfo{name: name, size: e.Size, mode: 0o444, modTime: time.Unix(e.ModTime, 0)})
	}
	return sortInfos(infos), nil
}

func (s *session) statDownload(rel string) (os.FileInfo, error) {
	st, err := s.egressStore()
	if err != nil {
		return nil, err
	}
	a, err := st.Stat(s.ctx, downloadKey(rel))
	if err == nil {
		return &fileInfo{name: path.Base(rel), size: a.Size, mode: 0o444, modTime: time.Unix(a.ModTime, 0)}, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	// Object stores have no directories: a prefix with objects below is one.
	below, err := st.List(s.ctx, downloadKey(rel)+"/")
	if err != nil {
		return nil, err
	}
	if len(below) == 0 {
		return nil, ErrNotFound
	}
	return &fileInfo{name: path.Base(rel), mode: os.ModeDir | 0o555, modTime: time.Now()}, nil
}

// download serves one file of the egress store, and records it in the
// ledger when closed: an egress transfer, delivered when the supplier read
// the whole file, failed (partial) when it read less but something. Complete is known
// without buffering or re-reading: the reads covered the file in order,
// each starting at or before the end of what was read so far, as every
// client tried reads (OpenSSH, pkg/sftp, rclone, lftp; the file lane
// serves a session's reads in the order sent). The sha256 is of those
// bytes, hashed on the way; a read further ahead is served but ends the
// in-order run, so the row then records the bytes read in order before it.
type download struct {
	*storage.ReaderAt
	s     *session
	tr    ledger.Transfer
	start ledger.Event

	mu     sync.Mutex
	sum    hash.Hash
	inRun  int64 // bytes read in order from offset 0, all hashed
	served int64 // bytes served, in order or not
	broken bool  // a read skipped ahead of inRun

	closeOnce sync.Once
	closeErr  error
}

func (d *download) ReadAt(p []byte, off int64) (int, error) {
	n, err := d.ReaderAt.ReadAt(p, off)
	d.s.srv.metrics.downloadBytes.Add(float64(n))
	d.account(p[:n], off)
	if err != nil && !errors.Is(err, io.EOF) {
		return n, statusError(err)
	}
	return n, err
}

// account adds the n bytes read at off to what the supplier has read.
func (d *download) account(p []byte, off int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.served += int64(len(p))
	end := off + int64(len(p))
	switch {
	case d.broken || end <= d.inRun:
	case off > d.inRun:
		d.broken = true
	default:
		d.sum.Write(p[d.inRun-off:])
		d.inRun = end
	}
}

// Close lets the file go and records the download: one ledger write.
func (d *download) Close() error {
	d.closeOnce.Do(func() {
		d.closeErr = d.ReaderAt.Close()
		d.record()
	})
	return statusError(d.closeErr)
}

// record writes the download to the ledger with its audit events.
func (d *download) record() {
	s := d.s
	d.mu.Lock()
	size, sha, served := d.inRun, hex.EncodeToString(d.sum.Sum(nil)), d.served
	d.mu.Unlock()
	complete := size == d.Size()
	if served == 0 && !complete {
		// Opened and closed unread: nothing left, and a client opening
		// files by the thousand costs no ledger writes.
		s.log.Debug("download closed unread", "path", d.tr.Path)
		return
	}
	to, kind, outcome, ch := ledger.Delivered, "download.finish", "complete", ledger.Change{Size: &size, SHA256: &sha}
	if !complete {
		reason := fmt.Sprintf("partial download: %d of %d bytes read in order", size, d.Size())
		to, kind, outcome, ch.Error = ledger.Failed, "download.partial", "partial", &reason
	}
	detail := map[string]string{"size": fmt.Sprint(size), "of": fmt.Sprint(d.Size()), "sha256": sha, "bytes_served": fmt.Sprint(served)}
	ctx, cancel := s.bookkeepingContext()
	defer cancel()
	if _, err := s.srv.ledger.Record(ctx, d.tr, d.start, to, ch, s.event(kind, detail)); err != nil {
		s.log.Error("record download", "transfer_id", d.tr.ID, "err", err)
	}
	s.srv.metrics.downloads.WithLabelValues(outcome).Inc()
	s.log.Info("download finished", "transfer_id", d.tr.ID, "path", d.tr.Path, "size", size, "of", d.Size(), "sha256", sha, "complete", complete)
}

func (s *session) openDownload(rel string) (io.ReaderAt, error) {
	st, err := s.egressStore()
	if err != nil {
		return nil, err
	}
	ra, err := st.OpenReaderAt(s.ctx, downloadKey(rel))
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			if fi, serr := s.statDownload(rel); serr == nil && fi.IsDir() {
				return nil, ErrIsDir
			}
		}
		return nil, fmt.Errorf("open download: %w", err)
	}
	d := &download{ReaderAt: ra, s: s, sum: sha256.New(), start: s.event("download.start", nil)}
	d.tr = ledger.NewTransfer(ledger.Transfer{
		Direction: ledger.Egress,
		Supplier:  s.supplier.Name,
		Path:      rel,
		Node:      s.srv.node,
		RemoteIP:  s.remoteIP,
	})
	s.log.Info("download started", "transfer_id", d.tr.ID, "path", rel, "size", ra.Size())
	return d, nil
}
