package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/pipeline"
	"github.com/airlock-gw/airlock/internal/storage"
	"github.com/airlock-gw/airlock/internal/watch"
)

// openDatasets opens the dataset files, reloaded on change: the routes
// the pipeline sends egress transfers along.
func (n *node) openDatasets(context.Context) error {
	n.datasets = config.NewDatasetReloader(n.cfg.DatasetsDir, filepath.Dir(n.cfg.File), n.cfg.Datasets, n.datasetsReloaded)
	return nil
}

// routes looks up a push dataset, as configured now.
func (n *node) routes(name string) (pipeline.Route, bool) {
	return datasetRoutes(n.cfg.Exports, n.datasets.Current)(name)
}

// datasetsReloaded logs and audits a reload of the dataset files.
func (n *node) datasetsReloaded(ctx context.Context, d *config.Datasets, err error) {
	ev := ledger.Event{Kind: "config.reload", Actor: "system", Detail: map[string]string{"datasets_dir": n.cfg.DatasetsDir}}
	if err != nil {
		n.log.Error("dataset reload refused; keeping the previous configuration", "err", err)
		ev.Detail["error"] = err.Error()
	} else {
		n.log.Info("datasets reloaded", "datasets", d.Len())
		ev.Detail["datasets"] = fmt.Sprint(d.Len())
	}
	if _, aerr := n.led.Append(ctx, ev); aerr != nil {
		n.log.Error("append audit event", "kind", ev.Kind, "err", aerr)
	}
}

// openExports opens the export area and its poller: what dataset users
// write there becomes egress transfers (pipeline.Exports), found by a
// listing every watch.every and, sooner, on a bucket notification.
func (n *node) openExports(ctx context.Context) error {
	var err error
	if n.exports, err = storage.Open(ctx, n.cfg.Exports); err != nil {
		return err
	}
	n.onClose(func() { n.exports.Close() })
	admit := &pipeline.Exports{Ledger: n.led, Queue: n.queue, Store: n.exports, Routes: n.routes,
		Metrics: n.metrics, Log: n.log}
	found := watch.HandlerFunc(func(ctx context.Context, o watch.Object) error {
		return admit.Found(ctx, o.Key, o.Size, o.ModTime)
	})
	m := watch.NewMetrics(n.reg)
	n.poller = watch.NewPoller(n.exports, "", watch.Options{Every: n.cfg.Watch.Every, Metrics: m}, found, n.log)
	opts := watch.WebhookOptions{Metrics: m, Log: n.log}
	if env := n.cfg.Watch.TokenEnv; env != "" {
		if opts.Token = os.Getenv(env); opts.Token == "" {
			return fmt.Errorf("watch.webhook_token_env: %s is not set", env)
		}
	}
	n.notifications = watch.Webhook(opts, n.poller)
	return nil
}

// withNotifications serves bucket notifications at /events/s3 beside h.
func (n *node) withNotifications(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /events/s3", n.notifications)
	mux.Handle("/", h)
	return mux
}
