package sftpd

import (
	"cmp"
	"context"
	"fmt"
	"path"
	"sync"

	"github.com/airlock-gw/airlock/internal/ledger"
)

// maxDirs bounds the directories a supplier may make that hold no upload:
// each is a row in the ledger and an entry in every node's memory.
const maxDirs = 10000

// dirSet caches, per supplier, the directories the ledger records as made
// and holding no upload yet; directories with uploads in them are derived
// from the transfers. A supplier's set is loaded on its first login on this
// node and written through after; a directory another node makes later is
// seen here after a restart.
type dirSet struct {
	mu   sync.Mutex
	dirs map[string]map[string]bool // supplier → path → made
}

// load reads supplier's directories from the ledger unless already loaded.
func (d *dirSet) load(ctx context.Context, l Ledger, supplier string) error {
	d.mu.Lock()
	_, loaded := d.dirs[supplier]
	d.mu.Unlock()
	if loaded {
		return nil
	}
	ps, err := l.Dirs(ctx, supplier, maxDirs)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dirs == nil {
		d.dirs = make(map[string]map[string]bool)
	}
	if _, loaded := d.dirs[supplier]; !loaded {
		d.dirs[supplier] = make(map[string]bool, len(ps))
		for _, p := range ps {
			d.dirs[supplier][p] = true
		}
	}
	return nil
}

func (d *dirSet) add(supplier, p string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dirs == nil {
		d.dirs = make(map[string]map[string]bool)
	}
	if d.dirs[supplier] == nil {
		d.dirs[supplier] = make(map[string]bool)
	}
	d.dirs[supplier][p] = true
}

func (d *dirSet) remove(supplier, p string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.dirs[supplier], p)
}

func (d *dirSet) has(supplier, p string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dirs[supplier][p]
}

// full reports whether supplier has made as many directories as it may.
func (d *dirSet) full(supplier string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.dirs[supplier]) >= maxDirs
}

// below returns the made directories directly below dir.
func (d *dirSet) below(supplier, dir string) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for p := range d.dirs[supplier] {
		if p != "/" && path.Dir(p) == dir {
			out = append(out, p)
		}
	}
	return out
}

func (s *session) mkdir(p string) error {
	if err := checkNotReceipt(p); err != nil {
		return err
	}
	if err := s.needDir(path.Dir(p)); err != nil {
		return err
	}
	if _, exists, err := s.fileAt(p); err != nil || exists {
		return cmp.Or(err, ErrExists)
	}
	if isDir, err := s.isDir(p); err != nil || isDir {
		return cmp.Or(err, ErrExists)
	}
	if s.srv.dirs.full(s.supplier.Name) {
		return fmt.Errorf("%w: at most %d empty directories", ErrTooManyDirs, maxDirs)
	}
	if err := s.srv.ledger.MakeDir(s.ctx, s.supplier.Name, p, s.dirEvent(p)); err != nil {
		return err
	}
	s.srv.dirs.add(s.supplier.Name, p)
	return nil
}

// dirEvent is the audit event of the supplier making or removing dir p.
func (s *session) dirEvent(p string) ledger.Event {
	return ledger.Event{Actor: s.supplier.Name, RemoteIP: s.remoteIP, ConnID: s.connID, Detail: map[string]string{"path": p}}
}

func (s *session) rmdir(p string) error {
	if p == "/" {
		return ErrReadOnly
	}
	if err := s.needDir(p); err != nil {
		return err
	}
	children, err := s.children(p)
	if err != nil {
		return err
	}
	if len(children) > 0 {
		return ErrNotEmpty
	}
	if err := s.srv.ledger.RemoveDir(s.ctx, s.supplier.Name, p, s.dirEvent(p)); err != nil {
		return err
	}
	s.srv.dirs.remove(s.supplier.Name, p)
	return nil
}
