package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

type pingFunc func(context.Context) error

func (f pingFunc) Ping(ctx context.Context) error { return f(ctx) }

func TestEndpoints(t *testing.T) {
	t.Parallel()
	ok := pingFunc(func(context.Context) error { return nil })
	down := pingFunc(func(context.Context) error { return errors.New("connection refused") })
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "airlock_test_total", Help: "x"}))

	tests := []struct {
		name     string
		checks   []Check
		path     string
		wantCode int
		wantBody string
	}{
		{"healthz", nil, "/healthz", 200, "ok"},
		{"ready", []Check{{Name: "database", Pinger: ok}, {Name: "landing", Pinger: ok}}, "/readyz", 200, `"ready":true`},
		{"not ready names the failing check", []Check{{Name: "database", Pinger: ok}, {Name: "landing", Pinger: down}}, "/readyz", 503, `"landing":"connection refused"`},
		{"notes are shown", []Check{{Name: "scanner", Pinger: ok, Note: "not an antivirus"}}, "/readyz", 200, `"notes":{"scanner":"not an antivirus"}`},
		{"metrics", nil, "/metrics", 200, "airlock_test_total 0"},
		{"unknown path", nil, "/nope", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := New(tt.checks, reg, slog.New(slog.DiscardHandler))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if rec.Code != tt.wantCode {
				t.Fatalf("code = %d, want %d; body %s", rec.Code, tt.wantCode, rec.Body)
			}
			if !strings.Contains(rec.Body.String(), tt.wantBody) {
				t.Fatalf("body %q lacks %q", rec.Body, tt.wantBody)
			}
			if tt.path == "/readyz" && !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("readyz body is not JSON: %s", rec.Body)
			}
		})
	}
}
