package main

import (
	"context"
	"fmt"
	"net/http"
	"os"

	"github.com/airlock-gw/airlock/internal/pipeline"
	"github.com/airlock-gw/airlock/internal/storage"
	"github.com/airlock-gw/airlock/internal/watch"
)

// routes looks up a push dataset, as configured now, or a route.
func (n *node) routes(name string) (pipeline.Route, bool) {
	return routeLookup(n.cfg.Exports, n.datasets.Current, n.routeSet.Load)(name)
}

// openExports opens the export area and its poller: what dataset users
// write there becomes egress transfers (pipeline.Exports), found by a
// listing every watch.every and, sooner, on a bucket notification (which
// hurries the routes' pollers too).
func (n *node) openExports(ctx context.Context) error {
	var err error
	if n.exports, err = storage.Open(ctx, n.cfg.Exports); err != nil {
		return err
	}
	n.onClose(func() { n.exports.Close() })
	// Only datasets: a folder named like a route is no route's source.
	datasets := routeLookup(n.cfg.Exports, n.datasets.Current, noRoutes)
	admit := &pipeline.Exports{Source: n.source(n.exports), Routes: datasets}
	found := watch.HandlerFunc(func(ctx context.Context, o watch.Object) error {
		return admit.Found(ctx, o.Key, o.Size, o.ModTime)
	})
	n.watchMetrics = watch.NewMetrics(n.reg)
	n.poller = watch.NewPoller(n.exports, "", watch.Options{Every: n.cfg.Watch.Every, Metrics: n.watchMetrics}, found, n.log)
	n.routePollers = &watch.Pollers{}
	opts := watch.WebhookOptions{Pollers: n.routePollers, Metrics: n.watchMetrics, Log: n.log}
	if env := n.cfg.Watch.TokenEnv; env != "" {
		if opts.Token = os.Getenv(env); opts.Token == "" {
			return fmt.Errorf("watch.webhook_token_env: %s is not set", env)
		}
	}
	n.notifications = watch.Webhook(opts, n.poller)
	return nil
}

// source is the admission of what appears in st.
func (n *node) source(st *storage.Store) pipeline.Source {
	return pipeline.Source{Ledger: n.led, Queue: n.queue, Store: st, Metrics: n.metrics, Log: n.log}
}

// withNotifications serves bucket notifications at /events/s3 beside h.
func (n *node) withNotifications(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /events/s3", n.notifications)
	mux.Handle("/", h)
	return mux
}
