// Package httpapi serves airlock's operational HTTP endpoints: liveness,
// readiness of the dependencies, and Prometheus metrics.
package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Pinger is a dependency that can say whether it answers.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Check is one named readiness check.
type Check struct {
	Name   string
	Pinger Pinger
	// Note is shown under "notes" whatever the result: something operators
	// must not miss about the dependency, such as a scanner that is no
	// antivirus.
	Note string
}

// checkTimeout bounds each readiness check, so that a hung dependency makes
// /readyz fail rather than hang.
const checkTimeout = 3 * time.Second

// New returns the handler for /healthz, /readyz and /metrics.
func New(checks []Check, gatherer prometheus.Gatherer, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		results, ready := runChecks(r.Context(), checks)
		if !ready {
			log.Warn("not ready", "checks", results)
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		w.Header().Set("Content-Type", "application/json")
		body := map[string]any{"ready": ready, "checks": results}
		if notes := notesOf(checks); len(notes) > 0 {
			body["notes"] = notes
		}
		_ = json.NewEncoder(w).Encode(body)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	return mux
}

// runChecks pings every dependency concurrently and reports "ok" or the
// error text for each.
func runChecks(ctx context.Context, checks []Check) (map[string]string, bool) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		results = make(map[string]string, len(checks))
		ready   = true
	)
	for _, c := range checks {
		wg.Go(func() {
			status := "ok"
			if err := c.Pinger.Ping(ctx); err != nil {
				status = err.Error()
			}
			mu.Lock()
			defer mu.Unlock()
			results[c.Name] = status
			ready = ready && status == "ok"
		})
	}
	wg.Wait()
	return results, ready
}

func notesOf(checks []Check) map[string]string {
	notes := make(map[string]string)
	for _, c := range checks {
		if c.Note != "" {
			notes[c.Name] = c.Note
		}
	}
	return notes
}

// WithProfiling serves Go's profiler under /debug/pprof/ beside h. It is
// off by default: profiles reveal internals, so they are only for an HTTP
// listener that operators alone can reach.
func WithProfiling(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
