package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/pipeline"
	"github.com/airlock-gw/airlock/internal/storage"
	"github.com/airlock-gw/airlock/internal/watch"
)

// openRoutes opens the source store of every route. A route that needs
// what this version cannot do yet (transforms, an https:// receiver) stops
// the start, rather than be skipped unseen.
func (n *node) openRoutes(ctx context.Context) error {
	n.routeStores = map[string]*storage.Store{}
	for _, r := range n.cfg.Routes.All() {
		if r.Decrypt || r.Rewrap != "" || r.Compress != "" || r.Encrypt.PGP != "" || len(r.Encrypt.Age) > 0 || r.HTTPS() {
			return fmt.Errorf("%s: route %s: transforms (decrypt, rewrap, encrypt, compress) and https:// destinations are not available in this version yet", r.File, r.Name)
		}
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

// watchRoute polls r's source prefix of the day: a source with
// $TODAYS_DATE is watched afresh from each UTC midnight.
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
		_ = p.Run(day) // returns when the day or ctx ends; failed polls are logged there
		cancel()
	}
}
