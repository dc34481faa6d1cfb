package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/ledger/ledgertest"
	"github.com/airlock-gw/airlock/internal/scan"
)

// heldScanner holds every scan until release is closed or the scan's
// context ends, as a wedged clamd would until airlock gives up.
type heldScanner struct {
	started chan struct{} // one value per scan begun
	release chan struct{}
	inner   Scanner
}

func (s *heldScanner) Scan(ctx context.Context, r io.Reader) (scan.Result, error) {
	s.started <- struct{}{}
	select {
	case <-s.release:
		return s.inner.Scan(ctx, r)
	case <-ctx.Done():
		return scan.Result{}, fmt.Errorf("clamd scan: %w", ctx.Err())
	}
}

// TestStopDrainsRunningJobs: a stop takes no new job and lets the running
// one finish within the grace; one still running at the end of the grace
// is handed back: available at once to any node, its attempt not counted
// and nothing recorded on the transfer, although the retry backoff is an
// hour.
func TestStopDrainsRunningJobs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		finishes  bool // the scan is released during the grace
		wantState ledger.State
	}{
		{"finished within the grace", true, ledger.Delivered},
		{"handed back after the grace", false, ledger.Scanning},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
				builtin, err := scan.NewBuiltin("")
				if err != nil {
					t.Fatal(err)
				}
				sc := &heldScanner{started: make(chan struct{}, 10), release: make(chan struct{}), inner: builtin}
				f := newFixture(t, dsn, fixtureOptions{scanner: sc, retryDelay: time.Hour})
				tr := f.land("/data.csv", []byte("data\n"))
				grace := 300 * time.Millisecond
				if tc.finishes {
					grace = 20 * time.Second
				}
				ctx, stop := context.WithCancel(t.Context())
				defer stop()
				done := make(chan error, 1)
				go func() { done <- f.queue.Run(ctx, grace) }()
				<-sc.started
				stop()
				if tc.finishes {
					time.Sleep(100 * time.Millisecond) // the stop is under way
					close(sc.release)
				}
				select {
				case err := <-done:
					if err != nil {
						t.Fatalf("Run: %v", err)
					}
				case <-time.After(grace + 10*time.Second):
					t.Fatal("Run did not return after the grace")
				}
				got := f.waitState(tr.ID, tc.wantState)
				if got.Error != "" {
					t.Errorf("the stop recorded an error on the transfer: %q", got.Error)
				}
				if tc.finishes {
					return
				}
				job := ingestJob(t, f, tr.ID)
				if job.State != rivertype.JobStateAvailable || job.ScheduledAt.After(time.Now()) || job.Attempt != 0 {
					t.Fatalf("job handed back as %s, scheduled %s, attempt %d; want available now, attempt 0",
						job.State, job.ScheduledAt, job.Attempt)
				}
				// Another node takes it up at once.
				close(sc.release)
				other, err := Open(t.Context(), f.ledger, "other", config.Pipeline{Workers: 1, MaxAttempts: 5,
					RetryBackoff: time.Hour, MaxBackoff: time.Hour, RescueAfter: time.Hour}, f.workers, testLogger(t))
				if err != nil {
					t.Fatal(err)
				}
				runCtx, cancel := context.WithCancel(t.Context())
				otherDone := make(chan error, 1)
				go func() { otherDone <- other.Run(runCtx, 0) }()
				defer func() { cancel(); <-otherDone }()
				f.waitState(tr.ID, ledger.Delivered)
			})
		})
	}
}

// ingestJob is the row of transfer id's ingest job.
func ingestJob(t *testing.T, f *fixture, id string) *rivertype.JobRow {
	t.Helper()
	res, err := f.queue.client.JobList(t.Context(), river.NewJobListParams().Kinds(ingestArgs{}.Kind()).First(100))
	if err != nil {
		t.Fatal(err)
	}
	for _, job := range res.Jobs {
		var args ingestArgs
		if err := json.Unmarshal(job.EncodedArgs, &args); err != nil {
			t.Fatal(err)
		}
		if args.TransferID == id {
			return job
		}
	}
	t.Fatalf("no ingest job for %s", id)
	return nil
}
