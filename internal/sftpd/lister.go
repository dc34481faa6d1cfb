package sftpd

import (
	"io"
	"os"
	"slices"
	"sort"
)

// listPage is how many entries a directory handle reads at once: what
// pkg/sftp asks for in a READDIR (sftp.MaxFilelist), so that a page is
// served whole and dropped.
const listPage = 100

// dirLister serves a directory handle's listing a page at a time, so that
// a client holding many handles open on a large directory holds a name per
// handle, not a listing. Each page reads the listing again (briefly, in the
// one request being served) and takes the entries after the last one
// served: entries added or removed meanwhile are neither repeated nor
// skipped.
type dirLister struct {
	list    func() ([]os.FileInfo, error) // the whole listing, sorted by name
	page    []os.FileInfo                 // read and not yet served
	next    int64                         // the offset of page[0]
	after   string                        // the name of the entry before page[0]; "" at the start
	done    bool                          // nothing follows page
	release func()
}

var _ io.Closer = (*dirLister)(nil)

// openDir opens a directory handle on loc.
func (s *session) openDir(loc location) (*dirLister, error) {
	release, err := s.takeHandle()
	if err != nil {
		return nil, err
	}
	l := &dirLister{list: func() ([]os.FileInfo, error) { return s.list(loc) }, release: release}
	// The first page now, so that a missing directory fails the open.
	if err := l.load(0); err != nil {
		release()
		return nil, err
	}
	return l, nil
}

func (l *dirLister) ListAt(dst []os.FileInfo, off int64) (int, error) {
	if off != l.next || (len(l.page) == 0 && !l.done) {
		if err := l.load(off); err != nil {
			return 0, err
		}
	}
	if len(l.page) == 0 {
		return 0, io.EOF
	}
	n := copy(dst, l.page)
	l.after = l.page[n-1].Name()
	if l.page = l.page[n:]; len(l.page) == 0 {
		l.page = nil // let the page go
	}
	l.next += int64(n)
	return n, nil
}

// load reads the page at off: the entries after the last one served when
// off follows it, else off entries into the listing.
func (l *dirLister) load(off int64) error {
	all, err := l.list()
	if err != nil {
		return err
	}
	start := min(int(off), len(all))
	if off == l.next && l.after != "" {
		start = sort.Search(len(all), func(i int) bool { return all[i].Name() > l.after })
	}
	end := min(start+listPage, len(all))
	// A copy: the rest of the listing is garbage once this returns.
	l.page = slices.Clone(all[start:end])
	l.next = off
	l.done = end == len(all)
	return nil
}

// Close gives the handle back; pkg/sftp calls it when the client closes the
// directory or the session ends.
func (l *dirLister) Close() error {
	l.page = nil
	l.release()
	return nil
}
