package pipeline

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/ledger/ledgertest"
)

// startNode runs a second node on the fixture's database and stores, with
// its own scanner and rescue_after, until the test ends; it returns the
// node's metrics.
func (f *fixture) startNode(name string, scanner Scanner, rescueAfter time.Duration) *Metrics {
	f.t.Helper()
	deps := f.deps
	deps.Scanner, deps.Metrics = scanner, NewMetrics(prometheus.NewRegistry())
	w := NewWorkers(deps)
	f.t.Cleanup(func() { w.Close() })
	settings := f.settings
	settings.RescueAfter = rescueAfter
	q, err := Open(f.t.Context(), f.ledger, name, settings, w, testLogger(f.t))
	if err != nil {
		f.t.Fatal(err)
	}
	f.runQueue(q)
	return deps.Metrics
}

func (f *fixture) count(id, kind string) int {
	f.t.Helper()
	n := 0
	for _, k := range f.eventKinds(id) {
		if k == kind {
			n++
		}
	}
	return n
}

// takeoverCase: node "test" hangs scanning a file, with its heartbeats as
// often as its rescue_after says, while node "b" (rescue_after 1s) watches.
type takeoverCase struct {
	name string
	// testRescueAfter is node test's: 1s, it beats every 166 ms (alive);
	// 1h, every 10 s, silent as far as node b can tell.
	testRescueAfter time.Duration
	takenOver       bool
}

func TestTakeoverGoesByHeartbeat(t *testing.T) {
	t.Parallel()
	for _, tc := range []takeoverCase{
		{name: "alive and slow", testRescueAfter: time.Second},
		{name: "silent", testRescueAfter: time.Hour, takenOver: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) { checkTakeover(t, dsn, tc) })
		})
	}
}

func checkTakeover(t *testing.T, dsn string, tc takeoverCase) {
	gate := newGatedScanner(t)
	// One worker: node test, silent but not dead, must not take the job
	// back once node b has made it available again.
	f := newFixture(t, dsn, fixtureOptions{scanner: gate, rescueAfter: tc.testRescueAfter, workers: 1})
	f.run()
	tr := f.land("/report.csv", []byte("old report\n"))
	f.waitState(tr.ID, ledger.Scanning)
	b := f.startNode("b", gate.inner, time.Second)

	if tc.takenOver {
		f.waitState(tr.ID, ledger.Delivered)
		if n := testutil.ToFloat64(b.takeovers); n != 1 {
			t.Errorf("node b counted %v jobs taken over, want 1", n)
		}
		if n := f.count(tr.ID, "pipeline.takeover"); n != 1 {
			t.Errorf("%d pipeline.takeover events for the transfer, want 1", n)
		}
	} else {
		// Four times rescue_after: a job's age alone would have it taken.
		time.Sleep(4 * time.Second)
		if got := f.mustGet(tr.ID); got.State != ledger.Scanning || got.Attempts != 1 {
			t.Fatalf("the slow job of a live node: transfer %s after %d attempts, want scanning after 1", got.State, got.Attempts)
		}
		if n := testutil.ToFloat64(b.takeovers); n != 0 {
			t.Fatalf("node b took over %v jobs of a live node", n)
		}
	}
	// The first run goes on: it must find the work done, or do it once.
	close(gate.open)
	f.waitState(tr.ID, ledger.Delivered)
	time.Sleep(500 * time.Millisecond)
	if n := f.count(tr.ID, "transfer.delivered"); n != 1 {
		t.Errorf("%d transfer.delivered events, want 1", n)
	}
	if got := f.files(f.destDir); !slices.Equal(got, []string{supplier + "/report.csv"}) {
		t.Errorf("destination holds %v", got)
	}
	if b, err := os.ReadFile(filepath.Join(f.destDir, supplier, "report.csv")); err != nil || string(b) != "old report\n" {
		t.Errorf("delivered %q, %v", b, err)
	}
	if !tc.takenOver && f.count(tr.ID, "pipeline.takeover") != 0 {
		t.Error("a job of a live node was recorded as taken over")
	}
}

// TestLeaseLapseCancelsJobs: a node that records no heartbeat for the
// lease's ttl cancels its jobs, and runs jobs again once it records one.
func TestLeaseLapseCancelsJobs(t *testing.T) {
	t.Parallel()
	const ttl = 200 * time.Millisecond
	l := newLease(ttl, testLogger(t))
	defer l.stop()
	l.renew(time.Now())
	start := time.Now()
	ctx, release, ok := l.hold(t.Context())
	if !ok {
		t.Fatal("a renewed lease is lapsed")
	}
	defer release()
	select {
	case <-ctx.Done():
	case <-time.After(10 * ttl):
		t.Fatal("the job's context did not end when the lease lapsed")
	}
	if took := time.Since(start); took < ttl*9/10 {
		t.Errorf("the lease lapsed after %s, before its ttl %s", took, ttl)
	}
	if !errors.Is(context.Cause(ctx), errLeaseLapsed) {
		t.Errorf("cause %v, want errLeaseLapsed", context.Cause(ctx))
	}
	if _, _, ok := l.hold(t.Context()); ok {
		t.Error("a job may start while the lease has lapsed")
	}

	l.renew(time.Now())
	again, release2, ok := l.hold(t.Context())
	if !ok {
		t.Fatal("the lease did not come back with a heartbeat")
	}
	defer release2()
	time.Sleep(ttl / 2)
	if again.Err() != nil {
		t.Error("a job started after the lease was renewed was cancelled")
	}
}

// TestNodeWithoutHeartbeatStopsItsJobs: a node that cannot record its
// heartbeat cancels its running job at half of rescue_after and runs none
// while it cannot, without spending their attempts; once its heartbeat is
// recorded again it runs them.
func TestNodeWithoutHeartbeatStopsItsJobs(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		gate := newGatedScanner(t)
		f := newFixture(t, dsn, fixtureOptions{scanner: gate, rescueAfter: time.Second, workers: 1})
		f.run()
		tr := f.land("/report.csv", []byte("old report\n"))
		f.waitState(tr.ID, ledger.Scanning)
		exec := func(q string) {
			if _, err := f.ledger.DB().ExecContext(t.Context(), q); err != nil {
				t.Fatal(err)
			}
		}
		// Heartbeats now fail, as they would on a node cut off from the
		// database, while the rest of the ledger answers.
		exec(`DROP TABLE nodes`)
		deadline := time.Now().Add(5 * time.Second)
		for gate.cancelled.Load() == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the running job was not cancelled when the lease lapsed")
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Fetched again and again meanwhile (retry backoff 10 ms), it
		// would have failed for good after 5 attempts.
		time.Sleep(2 * time.Second)
		if got := f.mustGet(tr.ID); got.State != ledger.Scanning || got.Attempts != 1 {
			t.Fatalf("with the lease out: transfer %s after %d attempts, want scanning after 1", got.State, got.Attempts)
		}
		exec(`CREATE TABLE nodes (name TEXT PRIMARY KEY, seen_at TEXT NOT NULL)`)
		close(gate.open)
		if got := f.waitState(tr.ID, ledger.Delivered); got.Attempts != 2 {
			t.Errorf("delivered after %d attempts, want 2", got.Attempts)
		}
	})
}
