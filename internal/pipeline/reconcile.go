package pipeline

import (
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
	trs, err := w.Ledger.List(ctx, ledger.Filter{States: pending, Limit: reconcileBatch})
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	client := river.ClientFromContext[*sql.Tx](ctx)
	var stuck []ledger.Transfer
	for _, tr := range trs {
		if time.Since(tr.UpdatedAt) >= stuckAfter {
			stuck = append(stuck, tr)
		}
	}
	if len(stuck) == 0 {
		return nil
	}
	// Listed after the transfers: a job that ends in between leaves its
	// transfer settled, and a job queued for a settled transfer does
	// nothing.
	alive, err := liveJobs(ctx, client)
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	requeued := 0
	for _, tr := range stuck {
		if alive[tr.ID] {
			continue
		}
		args, err := w.requeueArgs(ctx, tr)
		if err != nil {
			return fmt.Errorf("reconcile %s: %w", tr.ID, err)
		}
		if _, err := client.Insert(ctx, args, nil); err != nil {
			return fmt.Errorf("reconcile %s: %w", tr.ID, err)
		}
		requeued++
		w.Log.Warn("transfer had no job left: queued it again", "transfer_id", tr.ID, "state", tr.State)
	}
	if requeued > 0 {
		if _, err := w.Ledger.Append(ctx, ledger.Event{Kind: "pipeline.reconcile",
			Detail: map[string]string{"requeued": fmt.Sprint(requeued)}}); err != nil {
			return fmt.Errorf("reconcile: %w", err)
		}
	}
	return nil
}

// liveJobs returns the transfers that have an ingest or egress job that
// may still run.
func liveJobs(ctx context.Context, client *river.Client[*sql.Tx]) (map[string]bool, error) {
	alive := make(map[string]bool)
	params := river.NewJobListParams().Kinds(ingestArgs{}.Kind(), egressArgs{}.Kind()).States(
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
			}
			if err := json.Unmarshal(job.EncodedArgs, &args); err != nil {
				return nil, fmt.Errorf("job %d: %w", job.ID, err)
			}
			alive[args.TransferID] = true
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
