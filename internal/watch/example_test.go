package watch_test

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/airlock-gw/airlock/internal/storage"
	"github.com/airlock-gw/airlock/internal/watch"
)

// A poller of the export area's "ds/" prefix, hurried along by the
// bucket notifications POSTed to /notify.
func Example() {
	ctx := context.Background()
	exports, err := storage.Open(ctx, "s3://exports/area?endpoint=http://127.0.0.1:7070&use_path_style=true")
	if err != nil {
		return
	}
	admit := watch.HandlerFunc(func(ctx context.Context, o watch.Object) error {
		return nil // record o: Found may come again for it after a restart
	})
	m := watch.NewMetrics(prometheus.NewRegistry())
	p := watch.NewPoller(exports, "ds/", watch.Options{Metrics: m}, admit, slog.Default())
	http.Handle("POST /notify", watch.Webhook(watch.WebhookOptions{Token: "shared secret", Metrics: m}, p))
	go p.Run(ctx) //nolint:errcheck // returns when ctx ends
}
