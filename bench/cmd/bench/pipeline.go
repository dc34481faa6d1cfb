package main

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx", to read River's job table on Postgres
	_ "modernc.org/sqlite"             // registers "sqlite", to read it in a SQLite ledger
)

// airlockSide is airlock serving tree t as process srv, as the scenarios
// drive and check it: an upload counts once it has been delivered.
func (b *bench) airlockSide(t *airlockTree, srv *airlockServer) *side {
	return &side{
		name: "airlock", addr: t.sftpAddr,
		up: login{uploader, b.client.path}, uploadDir: "/",
		dl: login{downloader, b.dlClient.path}, dlPath: "/download/big.bin",
		idle: func(ctx context.Context) error { return t.waitPipeline(ctx, b.opts.pipelineTimeout) },
		verify: func(ctx context.Context, names []string, src srcFile) ([]string, error) {
			return t.verifyDelivered(ctx, b.tools.airlock, names, src)
		},
		clean: t.clean,
		cpu: func() float64 {
			c, _ := cpuSeconds(srv.cmd.Process.Pid)
			return c
		},
	}
}

// waitPipeline waits until airlock has no job left: every upload has been
// scanned and delivered (or quarantined, or failed) and its notifications
// sent. An ingest job is queued in the transaction that records the
// upload as received, before the client hears that its close succeeded,
// so once the session has ended, no unfinished job means no work left.
// No command lists River's jobs, so this reads its table (SELECT only).
func (t *airlockTree) waitPipeline(ctx context.Context, timeout time.Duration) error {
	db, err := t.openJobs()
	if err != nil {
		return fmt.Errorf("open the ledger %s: %w", t.database, err)
	}
	defer db.Close()
	deadline := time.Now().Add(timeout)
	for {
		var left int
		// River's schema keeps finalized_at NULL exactly while a job is
		// not completed, cancelled or discarded.
		err := db.QueryRowContext(ctx, `SELECT count(*) FROM river_job WHERE finalized_at IS NULL`).Scan(&left)
		switch {
		case err == nil && left == 0:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case time.Now().After(deadline):
			if err != nil {
				return fmt.Errorf("airlock's pipeline: count unfinished jobs: %w", err)
			}
			return fmt.Errorf("airlock's pipeline still has %d unfinished jobs after %s", left, timeout)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// openJobs opens the tree's ledger to read River's job table: a SQLite
// file read-only, so that the bench never takes its write lock, or the
// Postgres database, where a SELECT holds up no writer.
func (t *airlockTree) openJobs() (*sql.DB, error) {
	if p, ok := strings.CutPrefix(t.database, "sqlite:"); ok {
		return sql.Open("sqlite", "file:"+p+"?mode=ro&_busy_timeout=5000&_query_only=1")
	}
	return sql.Open("pgx", t.database)
}

// verifyDelivered checks that each uploaded name is delivered in the
// ledger with src's size and sha256, and that the file in the supplier's
// destination holds src's bytes.
func (t *airlockTree) verifyDelivered(ctx context.Context, airlockBin string, names []string, src srcFile) ([]string, error) {
	trs, err := t.transfers(ctx, airlockBin)
	if err != nil {
		return nil, err
	}
	var bad []string
	for _, n := range names {
		tr, ok := trs["/"+n]
		switch {
		case !ok:
			bad = append(bad, n+": not in the ledger")
		case tr.State != "delivered" || tr.Size != src.size || tr.SHA256 != src.sha:
			bad = append(bad, fmt.Sprintf("%s: state %s, %d bytes, sha256 %s (error %q); want delivered, %d, %s",
				n, tr.State, tr.Size, tr.SHA256, tr.Error, src.size, src.sha))
		default:
			if why := checkFile(filepath.Join(t.delivered, uploader, n), src); why != "" {
				bad = append(bad, why)
			}
		}
	}
	return bad, nil
}

// clean removes what uploads left: the delivered files, and anything a
// failed delivery left in a local landing directory. A landing bucket is
// the S3 scenario's to empty.
func (t *airlockTree) clean() error {
	if err := removeFiles(t.delivered); err != nil {
		return err
	}
	if strings.Contains(t.landing, "://") {
		return nil
	}
	return removeFiles(t.landing)
}

// pipelinePhases are the steps of a file through the pipeline, each
// bounded by the states the ledger records on entering them.
var pipelinePhases = []struct{ name, from, to string }{
	{"queued (received → scanning)", "received", "scanning"},
	{"scan (scanning → delivering)", "scanning", "delivering"},
	{"copy and verify (delivering → delivered)", "delivering", "delivered"},
}

// pipelineTimes are a batch of files' times through the pipeline.
type pipelineTimes struct {
	total  []float64            // received → delivered of each file, in milliseconds
	phases map[string][]float64 // by pipelinePhases name, in milliseconds
	span   time.Duration        // first received → last delivered
}

// pipelineTimes reads when each file entered each state from its audit
// events (`airlock transfers show --json`). The hand-off is the event
// whose detail says "to": "received" (its kind is upload.finish); the
// pipeline's own events are transfer.<state>.
func (t *airlockTree) pipelineTimes(ctx context.Context, airlockBin string, names []string) (pipelineTimes, error) {
	trs, err := t.transfers(ctx, airlockBin)
	if err != nil {
		return pipelineTimes{}, err
	}
	pt := pipelineTimes{phases: map[string][]float64{}}
	var first, last time.Time
	for _, n := range names {
		tr, ok := trs["/"+n]
		if !ok {
			return pipelineTimes{}, fmt.Errorf("%s: not in the ledger", n)
		}
		var shown struct {
			Events []struct {
				At     time.Time         `json:"at"`
				Detail map[string]string `json:"detail"`
			} `json:"events"`
		}
		if err := t.cli(ctx, airlockBin, &shown, "transfers", "show", tr.ID); err != nil {
			return pipelineTimes{}, err
		}
		// The first entry into each state: a retried step records its
		// state again, and the time until the retry succeeded belongs
		// to that step.
		entered := map[string]time.Time{}
		for _, e := range shown.Events {
			if to := e.Detail["to"]; to != "" {
				if _, seen := entered[to]; !seen {
					entered[to] = e.At
				}
			}
		}
		for _, st := range []string{"received", "scanning", "delivering", "delivered"} {
			if entered[st].IsZero() {
				return pipelineTimes{}, fmt.Errorf("%s (transfer %s): no audit event enters state %s", n, tr.ID, st)
			}
		}
		ms := func(from, to string) float64 {
			return float64(entered[to].Sub(entered[from])) / float64(time.Millisecond)
		}
		pt.total = append(pt.total, ms("received", "delivered"))
		for _, ph := range pipelinePhases {
			pt.phases[ph.name] = append(pt.phases[ph.name], ms(ph.from, ph.to))
		}
		if first.IsZero() || entered["received"].Before(first) {
			first = entered["received"]
		}
		if entered["delivered"].After(last) {
			last = entered["delivered"]
		}
	}
	pt.span = last.Sub(first)
	return pt, nil
}
