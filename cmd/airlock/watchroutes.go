package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"gocloud.dev/secrets"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/pipeline"
	"github.com/airlock-gw/airlock/internal/storage"
	"github.com/airlock-gw/airlock/internal/watch"
)

// openRoutes opens the source store of every route, and its transform and
// receiver. A route that needs what this version cannot do yet stops the
// start, rather than be skipped unseen.
func (n *node) openRoutes(ctx context.Context) error {
	n.routeStores, n.sends = map[string]*storage.Store{}, map[string]sending{}
	keepers := map[string]*secrets.Keeper{}
	n.onClose(func() {
		for _, k := range keepers {
			_ = k.Close() // a keeper holds nothing to lose
		}
	})
	for _, r := range n.cfg.Routes.All() {
		s, err := openSending(ctx, r, n.cfg.Keys, keepers)
		if err != nil {
			return err
		}
		n.sends[r.Name] = s
		location, _ := r.Watch("")
		st, err := storage.Open(ctx, location)
		if err != nil {
			return fmt.Errorf("route %s: %w", r.Name, err)
		}
		n.onClose(func() { st.Close() })
		n.routeStores[r.Name] = st
	}
	return nil
}

// watchRoutes polls each route's source until ctx ends.
func (n *node) watchRoutes(ctx context.Context) {
	var wg sync.WaitGroup
	for _, r := range n.cfg.Routes.All() {
		wg.Go(func() { n.watchRoute(ctx, r) })
	}
	wg.Wait()
}

// watchRoute polls r's source prefix of the day, every watch.every and
// when a bucket notification names it: a source with $TODAYS_DATE is
// watched afresh from each UTC midnight.
func (n *node) watchRoute(ctx context.Context, r *config.Route) {
	st := n.routeStores[r.Name]
	for ctx.Err() == nil {
		now := time.Now().UTC()
		_, prefix := r.Watch(now.Format(time.DateOnly))
		src := &pipeline.RouteSource{Source: n.source(st), Route: r.Name, Prefix: prefix, Flag: r.Flag}
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
