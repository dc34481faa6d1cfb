// Package pipeline turns "a file landed" into "the file was delivered or
// quarantined, and everyone was told", with durable jobs (River) in the
// ledger's own database.
//
// A job is inserted in the same transaction that records the state change
// calling for it (ledger.Change.InTx), so no state is ever left without the
// work that moves it on. Jobs run at least once: after a crash, a rescue or
// a retry a job may run again from any point, so every step first looks at
// the transfer's state in the ledger and at what already exists in the
// stores, and only does what is still missing.
package pipeline

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
)

// Queue is the job queue in the ledger's database. Open it with Open to
// insert jobs (the CLI does only that), and with Options.Workers set to run
// them too (serve).
type Queue struct {
	client      *river.Client[*sql.Tx]
	driver      riverdriver.Driver[*sql.Tx]
	workers     *Workers // nil: the queue only inserts
	ledger      *ledger.Ledger
	node        string
	rescueAfter time.Duration
	lease       *lease
	log         *slog.Logger
}

// pollInterval is how often an idle node looks for new jobs. River's
// SQLite and database/sql drivers cannot be woken by an insert, and a file
// waiting for the next poll is latency a supplier sees.
const pollInterval = 100 * time.Millisecond

// fetchCooldown is the least time between two fetches. A busy node fetches
// only as many jobs as it has idle workers, so it starts at most
// pipeline.workers jobs per cooldown, however short they are: at 20 ms,
// two workers would deliver at most 100 small files a second, fewer than
// one session uploads. A fetch is one small write.
const fetchCooldown = 2 * time.Millisecond

// pollOnly is River's driver for a cluster of nodes that all poll
// (Config.PollOnly): nothing listens, so River is told it can neither
// listen nor notify. Otherwise it writes a notification with most job
// inserts, for no reader: with SQLite a row and two index entries, three
// pages more in every upload's commit.
type pollOnly struct{ riverdriver.Driver[*sql.Tx] }

var _ riverdriver.Driver[*sql.Tx] = pollOnly{}

func (pollOnly) SupportsListener() bool     { return false }
func (pollOnly) SupportsListenNotify() bool { return false }

// Open brings River's tables in led's database up to date and returns a
// queue that can insert jobs. When w is not nil the queue also runs them
// once Run is called; settings are the node's pipeline configuration.
func Open(ctx context.Context, led *ledger.Ledger, node string, settings config.Pipeline, w *Workers, log *slog.Logger) (*Queue, error) {
	var driver riverdriver.Driver[*sql.Tx]
	if led.Postgres() {
		driver = pollOnly{riverdatabasesql.New(led.DB())}
	} else {
		driver = pollOnly{riversqlite.New(led.DB())}
	}
	migrator, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: quiet(log)})
	if err != nil {
		return nil, fmt.Errorf("open job queue: %w", err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return nil, fmt.Errorf("open job queue: migrate: %w", err)
	}

	cfg := &river.Config{
		ID:          node,
		Logger:      quiet(log),
		MaxAttempts: settings.MaxAttempts,
		RetryPolicy: backoff{first: settings.RetryBackoff, limit: settings.MaxBackoff},
		// Deliveries of multi-GB files take as long as they take. River's
		// rescuer ignores jobs without a timeout: the jobs of a node that
		// died are taken over by heartbeat instead (takeover.go).
		JobTimeout:        -1,
		PollOnly:          true,
		FetchPollInterval: pollInterval,
		FetchCooldown:     fetchCooldown,
	}
	ls := newLease(settings.RescueAfter/2, log)
	if w != nil {
		cfg.Workers = w.river
		cfg.Middleware = []rivertype.Middleware{&fence{lease: ls}}
		cfg.PeriodicJobs = []*river.PeriodicJob{reconcileJob(), retentionJob()}
		cfg.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: settings.Workers}}
	}
	client, err := river.NewClient(driver, cfg)
	if err != nil {
		return nil, fmt.Errorf("open job queue: %w", err)
	}
	return &Queue{client: client, driver: driver, workers: w, ledger: led, node: node,
		rescueAfter: settings.RescueAfter, lease: ls, log: log}, nil
}

// quiet passes River's own logging on at warning level and above: its info
// lines are about its internals, not about transfers.
func quiet(log *slog.Logger) *slog.Logger {
	return slog.New(levelFloor{log.Handler(), slog.LevelWarn})
}

type levelFloor struct {
	slog.Handler
	min slog.Level
}

func (h levelFloor) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

// Run works jobs until ctx ends. Then it takes no new job, lets the running
// ones finish for up to grace, and hands back those still running: their
// contexts are cancelled, and River makes a job cancelled by a stop
// available again at once, to any node, without counting the attempt.
func (q *Queue) Run(ctx context.Context, grace time.Duration) error {
	if err := q.rescueOwn(ctx); err != nil {
		return err
	}
	// Recorded before the first job starts, so that no job of this node
	// runs without its lease.
	if err := q.beat(ctx); err != nil {
		return fmt.Errorf("start job queue: %w", err)
	}
	defer q.lease.stop()
	q.forgetNodes(ctx)
	// Not ctx: its end would cancel the running jobs at once, as failures.
	if err := q.client.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start job queue: %w", err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { q.keepAlive(ctx) })
	q.watchDepth(ctx)
	wg.Wait()
	stopCtx := context.WithoutCancel(ctx)
	q.log.Info("job queue stopping: no new jobs taken", "draining", true, "grace", grace.String())
	graceCtx, cancel := context.WithTimeout(stopCtx, grace)
	defer cancel()
	if err := q.client.Stop(graceCtx); err == nil {
		q.log.Info("job queue stopped: running jobs finished", "draining", true)
		return nil
	}
	q.log.Warn("jobs still running at the end of the drain: handing them back", "draining", true)
	handCtx, cancel := context.WithTimeout(stopCtx, handBackWait)
	defer cancel()
	if err := q.client.StopAndCancel(handCtx); err == nil {
		q.log.Info("job queue stopped: running jobs handed back", "draining", true)
		return nil
	}
	// A job deaf to its context: it dies with the process, and its row
	// must not stay running until River's rescuer takes it up.
	if err := q.rescueOwn(stopCtx); err != nil {
		return fmt.Errorf("stop job queue: %w", err)
	}
	return nil
}

// handBackWait is how long jobs whose contexts were cancelled by a stop get
// to return.
const handBackWait = 5 * time.Second

// backoff doubles the delay from first up to limit, with up to 20% jitter
// so that files that failed together are not all retried at one instant.
type backoff struct{ first, limit time.Duration }

var _ river.ClientRetryPolicy = backoff{}

func (b backoff) NextRetry(job *rivertype.JobRow) time.Time {
	return time.Now().Add(b.delay(job.Attempt))
}

func (b backoff) delay(attempt int) time.Duration {
	d := b.first
	for i := 1; i < attempt && d < b.limit; i++ {
		d *= 2
	}
	d = min(d, b.limit)
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

// Admit is the hook every source calls in the transaction that records a
// transfer ready for the pipeline (ledger.Change.InTx, ledger.Admit): it
// queues the job that moves the transfer on, so that the two commit
// together or not at all. An upload the SFTP server received is scanned
// and delivered; a transfer along a route is checked and sent.
func (q *Queue) Admit(ctx context.Context, tx *sql.Tx, tr ledger.Transfer) error {
	return insert(ctx, q.client, tx, jobFor(tr))
}

// jobFor is the job that moves tr on from where it is.
func jobFor(tr ledger.Transfer) river.JobArgs {
	if tr.Route != "" {
		return egressArgs{TransferID: tr.ID}
	}
	return ingestArgs{TransferID: tr.ID}
}

// insert queues a job in tx. Workers pass the client River gives them in
// their context, everyone else the Queue's. River's fast insert does not
// read the job back: on SQLite a transaction queueing one job takes about
// 100 µs instead of 135 (BenchmarkAdmit). It cannot insert unique jobs,
// and none here is.
func insert(ctx context.Context, client *river.Client[*sql.Tx], tx *sql.Tx, args river.JobArgs) error {
	if _, err := client.InsertManyFastTx(ctx, tx, []river.InsertManyParams{{Args: args}}); err != nil {
		return fmt.Errorf("queue %s job: %w", args.Kind(), err)
	}
	return nil
}

// watchDepth keeps the queue depth metric current until ctx ends.
func (q *Queue) watchDepth(ctx context.Context) {
	tick := time.NewTicker(depthInterval)
	defer tick.Stop()
	for {
		n, err := q.depth(ctx)
		if err != nil && ctx.Err() == nil {
			q.log.Warn("count queued jobs", "err", err)
		}
		if err == nil && q.workers != nil {
			q.workers.Metrics.queueDepth.Set(float64(n))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

const depthInterval = 5 * time.Second

// depth counts the jobs waiting or running.
func (q *Queue) depth(ctx context.Context) (int, error) {
	res, err := q.client.JobList(ctx, river.NewJobListParams().
		States(rivertype.JobStateAvailable, rivertype.JobStateRetryable, rivertype.JobStateScheduled, rivertype.JobStateRunning).
		First(maxDepthCounted))
	if err != nil {
		return 0, fmt.Errorf("count jobs: %w", err)
	}
	return len(res.Jobs), nil
}

// maxDepthCounted caps the queue depth metric, so a scrape of a huge
// backlog stays cheap; it reads as "at least this many".
const maxDepthCounted = 10000

// pending are the states in which a transfer is still on its way through
// the pipeline, with a job to move it on.
var pending = []ledger.State{ledger.Received, ledger.Queued, ledger.Scanning, ledger.Delivering}

// ErrNotAllowed means an operator action does not apply to the transfer in
// its current state.
var ErrNotAllowed = errors.New("not allowed")

func isPending(s ledger.State) bool { return slices.Contains(pending, s) }
