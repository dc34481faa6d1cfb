package main

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"gocloud.dev/secrets"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/pipeline"
	"github.com/airlock-gw/airlock/internal/storage"
	"github.com/airlock-gw/airlock/internal/watch"
)

// routeSet is the routes in force, each with what the node opened for
// it. It never changes: a reload makes a new one, which keeps the entries
// of the routes it left as they were.
type routeSet struct {
	entries map[string]*routeEntry // by name
}

// routeEntry is one route in force: its transform and receiver, and the
// store of its source (nil in the commands that send nothing).
type routeEntry struct {
	route *config.Route
	send  sending
	store *storage.Store
}

// entry looks a route up; a nil set has none (before openRoutes).
func (s *routeSet) entry(name string) (*routeEntry, bool) {
	if s == nil {
		return nil, false
	}
	e, ok := s.entries[name]
	return e, ok
}

// openRoutes opens what every route needs (its transform, receiver and
// source store), and the reloader of the route files. A route that needs
// what this version cannot do yet stops the start, rather than be skipped
// unseen.
func (n *node) openRoutes(ctx context.Context) error {
	n.keepers = map[string]*secrets.Keeper{}
	n.onClose(func() {
		for _, k := range n.keepers {
			_ = k.Close() // a keeper holds nothing to lose
		}
	})
	set, err := n.openRouteSet(ctx, n.cfg.Routes, nil)
	if err != nil {
		return err
	}
	n.routeSet.Store(set)
	n.onClose(func() {
		for _, e := range n.routeSet.Load().entries {
			e.store.Close()
		}
	})
	n.routesChanged = make(chan struct{}, 1)
	n.routeReloader = config.NewRouteReloader(n.cfg.RoutesDir, filepath.Dir(n.cfg.File), n.cfg.Keys, n.cfg.Routes,
		n.checkRoutes, n.routesReloaded)
	return nil
}

// openRouteSet opens the routes of rs, reusing the entries of old for the
// routes that have not changed. On an error it closes what it opened.
func (n *node) openRouteSet(ctx context.Context, rs *config.Routes, old *routeSet) (*routeSet, error) {
	set := &routeSet{entries: map[string]*routeEntry{}}
	var opened []*routeEntry
	for _, r := range rs.All() {
		if e, ok := old.entry(r.Name); ok && reflect.DeepEqual(*e.route, *r) {
			set.entries[r.Name] = e
			continue
		}
		e, err := n.openRoute(ctx, r)
		if err != nil {
			for _, o := range opened {
				o.store.Close()
			}
			return nil, err
		}
		opened = append(opened, e)
		set.entries[r.Name] = e
	}
	return set, nil
}

func (n *node) openRoute(ctx context.Context, r *config.Route) (*routeEntry, error) {
	s, err := openSending(ctx, r, n.cfg.Keys, n.keepers)
	if err != nil {
		return nil, err
	}
	location, _ := r.Watch("")
	st, err := storage.Open(ctx, location)
	if err != nil {
		return nil, fmt.Errorf("%s: route %s: %w", r.File, r.Name, err)
	}
	return &routeEntry{route: r, send: s, store: st}, nil
}

// checkRoutes vets a reloaded set of route files before it is taken: no
// route may take a dataset's name, and each new or changed route must
// open. The set it opened waits in nextRoutes for routesReloaded; the
// reloader runs the two in turn, one reload at a time.
func (n *node) checkRoutes(ctx context.Context, rs *config.Routes) error {
	if err := config.RoutesApart(rs, n.datasets.Current()); err != nil {
		return err
	}
	set, err := n.openRouteSet(ctx, rs, n.routeSet.Load())
	if err != nil {
		return err
	}
	n.nextRoutes = set
	return nil
}

// routesReloaded puts a reloaded set of routes in force, logging and
// auditing what changed, and has watchRoutes follow it; a refused reload
// is logged and audited, and the routes in force run on.
func (n *node) routesReloaded(ctx context.Context, rs *config.Routes, err error) {
	if err != nil {
		n.auditReload(ctx, "route", n.cfg.RoutesDir, rs.Len(), nil, err, nil)
		return
	}
	old, set := n.routeSet.Load(), n.nextRoutes
	n.nextRoutes = nil
	n.routeSet.Store(set)
	n.auditReload(ctx, "route", n.cfg.RoutesDir, rs.Len(), nil, nil, routeChanges(old, set))
	select {
	case n.routesChanged <- struct{}{}:
	default: // one pending is enough: watchRoutes reads the set in force
	}
}

// routeChanges names the routes a reload added, changed and removed (a
// key only when there are some).
func routeChanges(old, set *routeSet) map[string]string {
	var added, changed, removed []string
	for name, e := range set.entries {
		switch was, ok := old.entry(name); {
		case !ok:
			added = append(added, name)
		case was != e:
			changed = append(changed, name)
		}
	}
	for name := range old.entries {
		if _, ok := set.entries[name]; !ok {
			removed = append(removed, name)
		}
	}
	out := map[string]string{}
	for k, names := range map[string][]string{"added": added, "changed": changed, "removed": removed} {
		if len(names) > 0 {
			slices.Sort(names)
			out[k] = strings.Join(names, ",")
		}
	}
	return out
}

// watchRoutes polls the source of each route in force until ctx ends,
// following reloads: a route removed or changed stops being watched (and
// its store is closed), a new or changed one starts.
func (n *node) watchRoutes(ctx context.Context) {
	type watcher struct {
		e    *routeEntry
		stop context.CancelFunc
		done chan struct{}
	}
	running := map[string]*watcher{}
	follow := func() {
		set := n.routeSet.Load()
		for _, name := range slices.Sorted(maps.Keys(running)) {
			if w := running[name]; set.entries[name] != w.e {
				w.stop()
				<-w.done
				w.e.store.Close() // no longer in force: nothing else reads it
				delete(running, name)
			}
		}
		for name, e := range set.entries {
			if _, ok := running[name]; !ok {
				wctx, stop := context.WithCancel(ctx)
				w := &watcher{e: e, stop: stop, done: make(chan struct{})}
				go func() { defer close(w.done); n.watchRoute(wctx, e) }()
				running[name] = w
			}
		}
	}
	follow()
	for {
		select {
		case <-ctx.Done():
			for _, w := range running {
				<-w.done
			}
			return
		case <-n.routesChanged:
			follow()
		}
	}
}

// watchRoute polls the route's source prefix of the day, every
// watch.every and when a bucket notification names it: a source with
// $TODAYS_DATE is watched afresh from each UTC midnight.
func (n *node) watchRoute(ctx context.Context, e *routeEntry) {
	r, st := e.route, e.store
	for ctx.Err() == nil {
		now := time.Now().UTC()
		_, prefix := r.Watch(now.Format(time.DateOnly))
		src := &pipeline.RouteSource{Source: n.source(st), Route: r.Name, Prefix: prefix, Flag: r.Flag, Release: r.Release, Scanner: n.scanner}
		found := watch.HandlerFunc(func(ctx context.Context, o watch.Object) error {
			return src.Found(ctx, o.Key, o.Size, o.ModTime)
		})
		p := watch.NewPoller(st, prefix, watch.Options{Every: n.cfg.Watch.Every, Metrics: n.watchMetrics}, found,
			n.log.With("route", r.Name))
		day, cancel := context.WithDeadline(ctx, now.Truncate(24*time.Hour).Add(24*time.Hour))
		remove := n.routePollers.Add(p) // a notification of its bucket and prefix hurries it
		_ = p.Run(day)                  // returns when the day or ctx ends; failed polls are logged there
		remove()
		cancel()
	}
}
