package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivertype"

	"github.com/airlock-gw/airlock/internal/ledger"
)

// Jobs of a node that died are taken over by the others, judged by the
// node's heartbeat rather than by how long a job has run.
//
// River rescues a running job only once its timeout has passed, and that
// timeout also cancels the job: any fixed bound either cancels a delivery
// that is merely long (a 5 GB copy to a slow destination) or leaves a dead
// node's jobs stranded for as long. So jobs have no timeout (River's
// rescuer then ignores them) and instead:
//
//   - every node records a heartbeat in the ledger every beatInterval;
//   - every node, as often, makes available again the jobs running on a
//     node whose heartbeat, and the job's start, are older than
//     pipeline.rescue_after (the update checks that the job has not been
//     started again meanwhile, so nodes doing this at once agree);
//   - a node that could not record a heartbeat for half of rescue_after
//     cancels its own running jobs, and starts none until it records one
//     again (fence), long before another node can take them: a job whose
//     node is alive but cut off from the database stops before its
//     takeover starts it again elsewhere.
//
// So one job never runs on two nodes at once, provided that the nodes'
// clocks agree to well within rescue_after/2. Even then every step checks
// the ledger and the stores first (ingest.go), so a second run would find
// the work done.

// beatInterval is how often a node records its heartbeat and looks for
// jobs of silent nodes: a sixth of rescue_after, at most 10 s.
func beatInterval(rescueAfter time.Duration) time.Duration {
	return min(rescueAfter/6, 10*time.Second)
}

// keepAlive records this node's heartbeats and takes over the jobs of
// silent nodes until ctx ends.
func (q *Queue) keepAlive(ctx context.Context) {
	every := beatInterval(q.rescueAfter)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		// Bounded, so that a database that hangs delays neither the next
		// heartbeat nor, through it, the fence.
		beatCtx, cancel := context.WithTimeout(ctx, every)
		if err := q.beat(beatCtx); err != nil && ctx.Err() == nil {
			q.log.Warn("heartbeat not recorded", "err", err)
		}
		if err := q.takeOver(beatCtx); err != nil && ctx.Err() == nil {
			q.log.Warn("look for jobs of silent nodes", "err", err)
		}
		cancel()
	}
}

// beat records this node's heartbeat and renews its lease on its jobs.
func (q *Queue) beat(ctx context.Context) error {
	at := time.Now()
	if err := q.ledger.Heartbeat(ctx, q.node); err != nil {
		return err
	}
	q.lease.renew(at)
	return nil
}

// takeOver makes available again the jobs running on nodes that have gone
// silent for rescue_after, and records each one taken in the audit log.
func (q *Queue) takeOver(ctx context.Context) error {
	seen, err := q.ledger.NodesSeen(ctx)
	if err != nil {
		return fmt.Errorf("take over jobs: %w", err)
	}
	jobs, err := q.running(ctx)
	if err != nil {
		return fmt.Errorf("take over jobs: %w", err)
	}
	horizon := time.Now().Add(-q.rescueAfter)
	byNode := make(map[string][]*rivertype.JobRow)
	for _, job := range jobs {
		node := lastNode(job)
		if node == q.node || job.AttemptedAt == nil || !job.AttemptedAt.Before(horizon) {
			continue
		}
		if at, ok := seen[node]; ok && at.After(horizon) {
			continue // alive: its job is slow, not stranded
		}
		byNode[node] = append(byNode[node], job)
	}
	for node, jobs := range byNode {
		reason := fmt.Sprintf("taken over by node %s: node %s was silent for %s", q.node, node, q.rescueAfter)
		if err := q.makeAvailable(ctx, jobs, horizon, reason); err != nil {
			return fmt.Errorf("take over jobs of node %s: %w", node, err)
		}
		if err := q.recordTakeovers(ctx, node, jobs, reason); err != nil {
			return fmt.Errorf("take over jobs of node %s: %w", node, err)
		}
	}
	return nil
}

// recordTakeovers audits and counts the jobs among jobs that this node
// took over: those whose first error since they were listed is reason,
// which names this node. Another node doing the same at once may have
// taken some first.
func (q *Queue) recordTakeovers(ctx context.Context, node string, jobs []*rivertype.JobRow, reason string) error {
	for _, job := range jobs {
		row, err := q.client.JobGet(ctx, job.ID)
		if errors.Is(err, river.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if len(row.Errors) <= len(job.Errors) || row.Errors[len(job.Errors)].Error != reason {
			continue
		}
		var args ingestArgs // notify jobs name their transfer alike
		_ = json.Unmarshal(job.EncodedArgs, &args)
		q.log.Warn("job of a silent node taken over", "node", node, "job", job.Kind, "transfer_id", args.TransferID)
		if q.workers != nil {
			q.workers.Metrics.takeovers.Inc()
		}
		if _, err := q.ledger.Append(ctx, ledger.Event{Kind: "pipeline.takeover", TransferID: args.TransferID,
			Detail: map[string]string{"node": node, "by": q.node, "job": job.Kind}}); err != nil {
			return err
		}
	}
	return nil
}

// forgetNodes deletes the heartbeats of nodes silent for nodeRetention,
// whose jobs were taken over long ago. It runs as a node starts: new node
// names come with restarts.
func (q *Queue) forgetNodes(ctx context.Context) {
	n, err := q.ledger.ForgetNodes(ctx, time.Now().Add(-max(nodeRetention, q.rescueAfter)))
	if err != nil {
		q.log.Warn("forget silent nodes", "err", err)
		return
	}
	if n > 0 {
		q.log.Info("forgot nodes silent for a week", "nodes", n)
	}
}

// nodeRetention is how long the heartbeat of a node gone silent is kept,
// to show which nodes ran lately. A job of a node without one is taken
// over after rescue_after all the same.
const nodeRetention = 7 * 24 * time.Hour

// rescueOwn makes the jobs this node was running when it last stopped (it
// crashed, or was killed) available again at once, without waiting for
// rescue_after: nothing can still be running a job of this node's previous
// life.
func (q *Queue) rescueOwn(ctx context.Context) error {
	jobs, err := q.running(ctx)
	if err != nil {
		return fmt.Errorf("rescue interrupted jobs: %w", err)
	}
	var own []*rivertype.JobRow
	for _, job := range jobs {
		if lastNode(job) == q.node {
			own = append(own, job)
		}
	}
	if len(own) == 0 {
		return nil
	}
	if err := q.makeAvailable(ctx, own, time.Now(), "interrupted: node "+q.node+" stopped while running the job"); err != nil {
		return fmt.Errorf("rescue interrupted jobs: %w", err)
	}
	q.log.Info("jobs interrupted by the last stop are available again", "jobs", len(own))
	return nil
}

// running lists the running jobs.
func (q *Queue) running(ctx context.Context) ([]*rivertype.JobRow, error) {
	res, err := q.client.JobList(ctx, river.NewJobListParams().States(rivertype.JobStateRunning).First(10000))
	if err != nil {
		return nil, err
	}
	return res.Jobs, nil
}

// lastNode is the node that last started job.
func lastNode(job *rivertype.JobRow) string {
	if len(job.AttemptedBy) == 0 {
		return ""
	}
	return job.AttemptedBy[len(job.AttemptedBy)-1]
}

// makeAvailable makes jobs available to any node at once, recording reason
// as their attempt's error, unless a job is no longer running or was started
// again at or after horizon: then another node got there first.
func (q *Queue) makeAvailable(ctx context.Context, jobs []*rivertype.JobRow, horizon time.Time, reason string) error {
	now := time.Now().UTC()
	params := &riverdriver.JobRescueManyParams{StuckHorizon: horizon}
	for _, job := range jobs {
		attemptErr, err := json.Marshal(rivertype.AttemptError{At: now, Attempt: job.Attempt, Error: reason})
		if err != nil {
			return err
		}
		params.ID = append(params.ID, job.ID)
		params.Error = append(params.Error, attemptErr)
		params.FinalizedAt = append(params.FinalizedAt, nil)
		params.ScheduledAt = append(params.ScheduledAt, now)
		// Available, not retryable: a retryable job waits for the leader to
		// schedule it, and the leader may be the node that is gone, whose
		// lease has yet to run out.
		params.State = append(params.State, string(rivertype.JobStateAvailable))
	}
	_, err := q.driver.GetExecutor().JobRescueMany(ctx, params)
	return err
}

// lease is this node's hold on the jobs it runs: it lapses when no
// heartbeat was recorded for ttl, and every job's context ends with it.
type lease struct {
	ttl    time.Duration
	log    *slog.Logger
	mu     sync.Mutex
	gen    int           // counts renewals, so that a stale timer does nothing
	lapsed chan struct{} // closed when the lease lapses
	closed bool
	timer  *time.Timer
}

// errLeaseLapsed ends the jobs of a node that could not record heartbeats.
var errLeaseLapsed = errors.New("this node recorded no heartbeat for half of pipeline.rescue_after: its jobs are left to other nodes")

func newLease(ttl time.Duration, log *slog.Logger) *lease {
	return &lease{ttl: ttl, log: log, lapsed: make(chan struct{})}
}

// renew extends the lease to ttl after at, when the heartbeat was sent.
func (l *lease) renew(at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gen++
	gen := l.gen
	if l.timer != nil {
		l.timer.Stop()
	}
	l.timer = time.AfterFunc(l.ttl-time.Since(at), func() { l.lapse(gen) })
	if l.closed {
		l.lapsed, l.closed = make(chan struct{}), false
		l.log.Info("heartbeat recorded again: this node runs jobs again")
	}
}

func (l *lease) lapse(gen int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if gen != l.gen || l.closed {
		return
	}
	close(l.lapsed)
	l.closed = true
	l.log.Error("no heartbeat recorded for half of pipeline.rescue_after: cancelling this node's jobs, for other nodes to take over", "for", l.ttl)
}

// stop ends the lease's timer.
func (l *lease) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gen++
	if l.timer != nil {
		l.timer.Stop()
	}
}

// hold returns a context that also ends when the lease lapses, and the
// function that releases it; ok is false when the lease has lapsed.
func (l *lease) hold(ctx context.Context) (_ context.Context, release context.CancelFunc, ok bool) {
	l.mu.Lock()
	lapsed, closed := l.lapsed, l.closed
	l.mu.Unlock()
	if closed {
		return ctx, func() {}, false
	}
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-lapsed:
			cancel(errLeaseLapsed)
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(nil) }, true
}

// fence runs every job in a context that ends when the node's lease
// lapses, and none while it has lapsed.
type fence struct {
	river.MiddlewareDefaults
	lease *lease
}

var _ rivertype.WorkerMiddleware = (*fence)(nil)

// fencedWait is how long a job this node fetched while its lease had
// lapsed waits before any node may fetch it again. Waiting costs it no
// attempt, as failing would, again and again while the lease is out.
const fencedWait = time.Second

func (f *fence) Work(ctx context.Context, _ *rivertype.JobRow, doInner func(context.Context) error) error {
	ctx, release, ok := f.lease.hold(ctx)
	if !ok {
		return river.JobSnooze(fencedWait)
	}
	defer release()
	return doInner(ctx)
}
