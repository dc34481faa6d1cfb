package sftpd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

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
		if CheckName(name) != nil {
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

// download serves one file of the egress store.
type download struct {
	*storage.ReaderAt
	s *session
}

func (d *download) ReadAt(p []byte, off int64) (int, error) {
	n, err := d.ReaderAt.ReadAt(p, off)
	d.s.srv.metrics.downloadBytes.Add(float64(n))
	if err != nil && !errors.Is(err, io.EOF) {
		return n, statusError(err)
	}
	return n, err
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
	s.log.Info("download started", "path", rel, "size", ra.Size())
	return &download{ReaderAt: ra, s: s}, nil
}
