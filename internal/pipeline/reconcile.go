package pipeline

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/storage"
)

// reconcileArgs is the periodic job that finds transfers on their way with
// no job left to move them on, and queues one. Every state change and its
// job commit together, so this is a safety net for what the queue itself
// may drop: River discards a job that is rescued after its last attempt,
// and one whose failure could not even be recorded.
type reconcileArgs struct{}

func (reconcileArgs) Kind() string { return "reconcile" }

// Reconciling runs this often, on one node (River's leader), and leaves
// alone transfers that changed within stuckAfter.
const (
	reconcileEvery = time.Minute
	stuckAfter     = time.Minute
	reconcileBatch = 1000
)

func reconcileJob() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(reconcileEvery),
		func() (river.JobArgs, *river.InsertOpts) { return reconcileArgs{}, nil },
		&river.PeriodicJobOpts{ID: "reconcile", RunOnStart: true})
}

type reconcileWorker struct {
	river.WorkerDefaults[reconcileArgs]
	w *Workers
}

func (rw *reconcileWorker) Work(ctx context.Context, _ *river.Job[reconcileArgs]) error {
	w := rw.w
	stuck, err := w.stuckWork(ctx)
	if err != nil || len(stuck) == 0 {
		return err
	}
	// Listed after the work: a job that ends in between leaves its
	// transfer or batch settled, and a job queued for a settled one does
	// nothing.
	client := river.ClientFromContext[*sql.Tx](ctx)
	alive, err := liveJobs(ctx, client)
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	requeued := 0
	for _, s := range stuck {
		if alive[s.id] {
			continue
		}
		args, err := s.args()
		if err != nil {
			return fmt.Errorf("reconcile %s: %w", s.id, err)
		}
		if _, err := client.Insert(ctx, args, nil); err != nil {
			return fmt.Errorf("reconcile %s: %w", s.id, err)
		}
		requeued++
		w.Log.Warn("work had no job left: queued it again", "id", s.id, "what", s.what)
	}
	if requeued > 0 {
		if _, err := w.Ledger.Append(ctx, ledger.Event{Kind: "pipeline.reconcile",
			Detail: map[string]string{"requeued": fmt.Sprint(requeued)}}); err != nil {
			return fmt.Errorf("reconcile: %w", err)
		}
	}
	return nil
}

// stuckItem is a transfer or batch that has not moved for stuckAfter, and
// the job that would move it on.
type stuckItem struct {
	id, what string
	args     func() (river.JobArgs, error)
}

// stuckWork lists the transfers on their way and the batches whose every
// member is delivered, or one failed, but that are still open, untouched
// for stuckAfter.
func (w *Workers) stuckWork(ctx context.Context) ([]stuckItem, error) {
	trs, err := w.Ledger.List(ctx, ledger.Filter{States: pending, Limit: reconcileBatch})
	if err != nil {
		return nil, fmt.Errorf("reconcile: %w", err)
	}
	var stuck []stuckItem
	for _, tr := range trs {
		if time.Since(tr.UpdatedAt) >= stuckAfter {
			stuck = append(stuck, stuckItem{id: tr.ID, what: "transfer " + string(tr.State),
				args: func() (river.JobArgs, error) { return w.requeueArgs(ctx, tr) }})
		}
	}
	bs, err := w.Ledger.Batches(ctx, ledger.BatchFilter{State: ledger.BatchOpen, Limit: reconcileBatch})
	if err != nil {
		return nil, fmt.Errorf("reconcile: %w", err)
	}
	for _, b := range bs {
		if (b.Complete() || b.Broken()) && time.Since(b.CreatedAt) >= stuckAfter {
			stuck = append(stuck, stuckItem{id: b.ID, what: "batch settled but open",
				args: func() (river.JobArgs, error) { return batchArgs{BatchID: b.ID}, nil }})
		}
	}
	return stuck, nil
}

// liveJobs returns the transfers and batches that have a job that may
// still run.
func liveJobs(ctx context.Context, client *river.Client[*sql.Tx]) (map[string]bool, error) {
	alive := make(map[string]bool)
	params := river.NewJobListParams().Kinds(ingestArgs{}.Kind(), egressArgs{}.Kind(), batchArgs{}.Kind()).States(
		rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
		rivertype.JobStateRunning, rivertype.JobStateScheduled,
	).First(reconcileBatch)
	for {
		res, err := client.JobList(ctx, params)
		if err != nil {
			return nil, err
		}
		for _, job := range res.Jobs {
			var args struct {
				TransferID string `json:"transfer_id"`
				BatchID    string `json:"batch_id"`
			}
			if err := json.Unmarshal(job.EncodedArgs, &args); err != nil {
				return nil, fmt.Errorf("job %d: %w", job.ID, err)
			}
			alive[cmp.Or(args.TransferID, args.BatchID)] = true
		}
		if len(res.Jobs) < reconcileBatch {
			return alive, nil
		}
		params = params.After(res.LastCursor)
	}
}

// requeueArgs is the job for a stuck transfer. A release without a rescan
// is not remembered: the file is scanned again, which is safe. If its
// bytes are gone, the job finds that out and fails the transfer.
func (w *Workers) requeueArgs(ctx context.Context, tr ledger.Transfer) (river.JobArgs, error) {
	if tr.Route != "" {
		return jobFor(tr), nil
	}
	where, err := locate(ctx, w.Landing, w.Quarantine, tr)
	return ingestArgs{TransferID: tr.ID, FromQuarantine: where == inQuarantine}, err
}

// Where a transfer's bytes are.
type placement int

const (
	nowhere placement = iota
	inLanding
	inQuarantine // an operator released it from there
)

func locate(ctx context.Context, landing, quarantine *storage.Store, tr ledger.Transfer) (placement, error) {
	_, err := landing.Stat(ctx, tr.LandingKey)
	if err == nil {
		return inLanding, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return nowhere, err
	}
	_, err = quarantine.Stat(ctx, quarantineKey(tr))
	if err == nil {
		return inQuarantine, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return nowhere, err
	}
	return nowhere, nil
}
