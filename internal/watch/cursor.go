package watch

import (
	"time"

	"github.com/airlock-gw/airlock/internal/storage"
)

// cursor is what a Poller knows of the objects under its prefix: each
// version it has seen, since when, and whether it handed it over. It holds
// an entry per object present, nothing of the objects gone.
type cursor struct {
	seen   map[string]*entry
	gen    uint64 // the poll under way
	listed int    // how many objects it listed
}

// version is what tells an object's versions apart: a rewrite changes its
// size, its modification time or (on object stores) its ETag.
type version struct {
	size, mtime int64
	etag        string
}

type entry struct {
	version
	since time.Duration // when this version was first seen, since the Poller started
	gen   uint64        // the last poll that saw it
	done  bool          // handed over
}

// see records that the poll under way, at now, lists a.
func (c *cursor) see(a storage.Attributes, now time.Duration) *entry {
	v := version{a.Size, a.ModTime, a.ETag}
	e := c.seen[a.Key]
	switch {
	case e == nil:
		e = &entry{version: v, since: now}
		c.seen[a.Key] = e
	case e.version != v:
		*e = entry{version: v, since: now}
	}
	e.gen = c.gen
	c.listed++
	return e
}

// sweep forgets the objects the poll just completed did not list. It
// looks only when there are some: a listing gives each key once.
func (c *cursor) sweep() {
	if c.listed == len(c.seen) {
		return
	}
	for k, e := range c.seen {
		if e.gen != c.gen {
			delete(c.seen, k)
		}
	}
}
