// Package watch reports what appears in a store prefix: a Poller lists the
// prefix again and again and hands each complete object it has not handed
// over yet to a Handler. Listing works on every store; bucket notifications
// (see Webhook) only make a poll come sooner, so a lost notification
// delays an object, never loses it.
package watch

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/airlock-gw/airlock/internal/storage"
)

// Object is an object the Poller found.
type Object struct {
	Key     string
	Size    int64
	ModTime time.Time
	ETag    string // "" when the store has none (local directories)
}

// Handler takes the objects a Poller finds. Found may be called again for
// an object it took before (after a restart: the Poller remembers only in
// memory). An error leaves the object to be offered again at a later poll.
type Handler interface {
	Found(ctx context.Context, o Object) error
}

// HandlerFunc is a function as a Handler.
type HandlerFunc func(ctx context.Context, o Object) error

// Found calls f.
func (f HandlerFunc) Found(ctx context.Context, o Object) error { return f(ctx, o) }

// Lister lists a store recursively (storage.Store is one).
type Lister interface {
	Walk(ctx context.Context, prefix string, fn func(storage.Attributes) error) error
}

// inPlace is a Lister that may list a file while it is still being
// written (storage.Store in a local directory).
type inPlace interface{ InPlaceWrites() bool }

// bucketed is a Lister in an object store's bucket, under a key prefix:
// what bucket notifications name (see Webhook).
type bucketed interface{ Bucket() (name, prefix string) }

// Options tune a Poller.
type Options struct {
	// Every is the time between polls; 5 s when zero.
	Every time.Duration
	// Settle is how long an object's size, modification time and ETag
	// must hold still, across polls, before it is handed over. Zero
	// means 2×Every where the Lister may list files still being written
	// (a local directory), and none for object stores, which list an
	// upload only once it is complete.
	Settle time.Duration
	// MinGap is the least time between the start of a poll and one a
	// Kick asks for, so that a burst of notifications costs a listing
	// now and then, not one each; 1 s when zero.
	MinGap time.Duration
	// Metrics counts polls and objects; nil counts nothing.
	Metrics *Metrics
}

// Defaults.
const (
	DefaultEvery  = 5 * time.Second
	DefaultMinGap = time.Second
)

// Poller hands each complete object under a prefix to a Handler once per
// version (its size, modification time and ETag) and per process.
type Poller struct {
	l      Lister
	prefix string
	opts   Options
	h      Handler
	log    *slog.Logger
	scope  scope
	kick   chan struct{}
	clock  func() time.Duration // monotonic time since the Poller was made

	mu     sync.Mutex // one poll at a time
	cursor cursor
}

// NewPoller returns a Poller of the objects of l whose keys start with
// prefix.
func NewPoller(l Lister, prefix string, opts Options, h Handler, log *slog.Logger) *Poller {
	opts.Every = cmp.Or(opts.Every, DefaultEvery)
	opts.MinGap = cmp.Or(opts.MinGap, DefaultMinGap)
	if ip, ok := l.(inPlace); ok && ip.InPlaceWrites() && opts.Settle == 0 {
		opts.Settle = 2 * opts.Every
	}
	p := &Poller{
		l: l, prefix: prefix, opts: opts, h: h,
		log:    log.With("watch", prefix),
		scope:  scope{prefix: prefix},
		kick:   make(chan struct{}, 1),
		clock:  since(time.Now()),
		cursor: cursor{seen: make(map[string]*entry)},
	}
	if b, ok := l.(bucketed); ok {
		name, storePrefix := b.Bucket()
		p.scope = scope{bucket: name, prefix: storePrefix + prefix}
	}
	return p
}

// Run polls at once, then every Every and whenever Kick asks, until ctx
// ends. A failed poll is logged and counted; the next one tries again.
func (p *Poller) Run(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	var last time.Time
	for {
		trigger := "timer"
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-p.kick:
			trigger = "kick"
			if !sleep(ctx, p.opts.MinGap-time.Since(last)) {
				return nil
			}
		}
		last = time.Now()
		p.opts.Metrics.poll(trigger)
		if err := p.Poll(ctx); err != nil && ctx.Err() == nil {
			p.opts.Metrics.pollFailed()
			p.log.Warn("poll failed; the next poll tries again", "err", err)
		}
		timer.Reset(p.opts.Every)
	}
}

func since(start time.Time) func() time.Duration {
	return func() time.Duration { return time.Since(start) }
}

// sleep waits d, or until ctx ends (false).
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Kick asks for a poll now (or after MinGap). Kicks that come while one is
// pending make one poll.
func (p *Poller) Kick() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Poll lists the prefix once and hands over what is new and complete. An
// object whose hand-over fails is offered again at the next poll. Run
// calls it; it is exported for a caller that polls on its own schedule.
func (p *Poller) Poll(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := &p.cursor
	c.gen, c.listed = c.gen+1, 0
	now := p.clock()
	before := len(c.seen)
	err := p.l.Walk(ctx, p.prefix, func(a storage.Attributes) error {
		e := c.see(a, now)
		if e.done || now-e.since < p.opts.Settle {
			return nil
		}
		return p.handOver(ctx, e, a)
	})
	if err == nil {
		// Only a complete listing shows what has gone.
		c.sweep()
	}
	p.opts.Metrics.watching(len(c.seen) - before)
	return err
}

// handOver gives the object to the Handler; only the end of ctx stops
// the poll.
func (p *Poller) handOver(ctx context.Context, e *entry, a storage.Attributes) error {
	o := Object{Key: a.Key, Size: a.Size, ModTime: time.Unix(a.ModTime, 0), ETag: a.ETag}
	if err := p.h.Found(ctx, o); err != nil {
		if ctx.Err() != nil {
			return errors.Join(ctx.Err(), err)
		}
		p.opts.Metrics.handOver(false)
		p.log.Warn("hand-over failed; offered again at the next poll", "key", a.Key, "err", err)
		return nil
	}
	p.opts.Metrics.handOver(true)
	p.log.LogAttrs(ctx, slog.LevelDebug, "found", slog.String("key", a.Key), slog.Int64("size", a.Size))
	e.done = true
	return nil
}
