package sftpd

import (
	"io"
	"os"
	"slices"
	"sort"
)

// listPage is how many entries a directory handle holds at most: the
// listing is read again for every page, so that a client holding many
// handles open on a large directory holds pages, not whole listings.
// pkg/sftp asks for 100 entries a READDIR.
const listPage = 256

// dirLister serves a directory handle's listing a page at a time. Each page
// after the first reads the whole listing again (briefly, in the one
// request being served) and keeps the entries after the last one served,
// so that entries added or removed meanwhile are neither repeated nor
// skipped.
type dirLister struct {
	list    func() ([]os.FileInfo, error) // the whole listing, sorted by name
	page    []os.FileInfo
	pageOff int64 // the offset of page[0] in the listing
	more    bool  // the listing goes on after page
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
	end := l.pageOff + int64(len(l.page))
	if off < l.pageOff || (off >= end && l.more) {
		if err := l.load(off); err != nil {
			return 0, err
		}
		end = l.pageOff + int64(len(l.page))
	}
	if off >= end {
		return 0, io.EOF
	}
	return copy(dst, l.page[off-l.pageOff:]), nil
}

// load reads the page that starts at off: after the last entry served when
// off follows the page held, else off entries into the listing.
func (l *dirLister) load(off int64) error {
	all, err := l.list()
	if err != nil {
		return err
	}
	start := min(int(off), len(all))
	if n := len(l.page); n > 0 && off == l.pageOff+int64(n) {
		last := l.page[n-1].Name()
		start = sort.Search(len(all), func(i int) bool { return all[i].Name() > last })
	}
	end := min(start+listPage, len(all))
	// A copy: the rest of the listing is garbage once this returns.
	l.page = slices.Clone(all[start:end])
	l.pageOff = off
	l.more = end < len(all)
	return nil
}

// Close gives the handle back; pkg/sftp calls it when the client closes the
// directory or the session ends.
func (l *dirLister) Close() error {
	l.page = nil
	l.release()
	return nil
}
