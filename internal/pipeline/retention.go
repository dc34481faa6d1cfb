package pipeline

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/riverqueue/river"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/storage"
)

// Retention says how long a pull dataset's bucket keeps an object.
type Retention struct {
	Dataset  string
	Location string        // the pull bucket's store URL
	Keep     time.Duration // objects last written longer ago are deleted
}

// retentionArgs is the periodic job that deletes from each pull dataset's
// bucket what it keeps past its retention. It runs on one node (River's
// leader), at the start and hourly.
type retentionArgs struct{}

func (retentionArgs) Kind() string { return "retention" }

const retentionEvery = time.Hour

func retentionJob() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(retentionEvery),
		func() (river.JobArgs, *river.InsertOpts) { return retentionArgs{}, nil },
		&river.PeriodicJobOpts{ID: "retention", RunOnStart: true})
}

type retentionWorker struct {
	river.WorkerDefaults[retentionArgs]
	w *Workers
}

func (rw *retentionWorker) Work(ctx context.Context, _ *river.Job[retentionArgs]) error {
	if rw.w.Retention == nil {
		return nil
	}
	for _, r := range rw.w.Retention() {
		if err := rw.w.expire(ctx, r, time.Now()); err != nil {
			return fmt.Errorf("retention of %s: %w", r.Dataset, err)
		}
	}
	return nil
}

// expire deletes the objects of r's bucket last written before now less
// r.Keep. Each deletion is audited first ("retention.delete"): a deletion
// that then fails is tried again by the next run, never done unrecorded.
func (w *Workers) expire(ctx context.Context, r Retention, now time.Time) error {
	st, err := w.stores.Open(ctx, r.Location)
	if err != nil {
		return err
	}
	cutoff := now.Add(-r.Keep).Unix()
	var old []storage.Attributes
	err = st.Walk(ctx, "", func(a storage.Attributes) error {
		if a.ModTime < cutoff {
			old = append(old, a)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, a := range old {
		ev := ledger.Event{Kind: "retention.delete", Detail: map[string]string{
			"dataset": r.Dataset, "key": a.Key, "size": strconv.FormatInt(a.Size, 10),
			"modified": time.Unix(a.ModTime, 0).UTC().Format(time.RFC3339), "retention": r.Keep.String(),
		}}
		if _, err := w.Ledger.Append(ctx, ev); err != nil {
			return err
		}
		if err := st.Delete(ctx, a.Key); err != nil {
			return err
		}
		w.Log.Info("deleted past its retention", "dataset", r.Dataset, "key", a.Key, "modified", ev.Detail["modified"])
	}
	return nil
}
