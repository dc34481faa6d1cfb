package pipeline

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/notify"
)

// batchNotifyArgs is the job that tells of a batch's outcome: the route's
// notify recipients (and, when it failed, the operators) by email, and the
// webhook. It is queued in the transaction that settles the batch, which
// happens once, whichever node or run gets there; the ledger's notices
// keep a retry from repeating what was sent.
type batchNotifyArgs struct {
	BatchID  string `json:"batch_id"`
	Event    string `json:"event"`              // notify.EventBatchDelivered or EventBatchFailed
	Manifest string `json:"manifest,omitempty"` // where the manifest went
}

func (batchNotifyArgs) Kind() string { return "batch_notify" }

type batchNotifyWorker struct {
	river.WorkerDefaults[batchNotifyArgs]
	w *Workers
}

func (bw *batchNotifyWorker) Work(ctx context.Context, job *river.Job[batchNotifyArgs]) error {
	w, a := bw.w, job.Args
	o, msgs, err := w.batchMessages(ctx, a.BatchID, a.Event, a.Manifest)
	if err != nil {
		return err
	}
	n := notice{key: fmt.Sprintf("batch:%s:%s", o.Batch, o.Event), event: o.Event, batch: o.Batch}
	return w.tell(ctx, job.JobRow, n, msgs, func(ctx context.Context) error {
		return w.Webhook.SendBatch(ctx, o.Batch+":"+o.Event, o)
	})
}

// failBatch marks b, open with a member settled undelivered, failed.
func (w *Workers) failBatch(ctx context.Context, client *river.Client[*sql.Tx], b ledger.Batch) error {
	members, err := w.Ledger.List(ctx, ledger.Filter{Batch: b.ID})
	if err != nil {
		return err
	}
	var failed []string
	for _, tr := range members {
		if undelivered(tr.State) {
			failed = append(failed, tr.ID)
		}
	}
	settled, err := w.Ledger.SettleBatch(ctx, b.ID, ledger.BatchFailed, ledger.Event{Detail: map[string]string{
		"batch": b.ID, "route": b.Route, "files": strconv.Itoa(b.Files), "failures": strconv.Itoa(len(failed)),
		"failed": strings.Join(failed, ",")}}, w.announceBatch(client, b.ID, notify.EventBatchFailed, ""))
	if err != nil || !settled { // a run before this one settled it
		return err
	}
	w.Metrics.batches.WithLabelValues(b.Route, ledger.BatchFailed).Inc()
	w.Log.Error("batch failed: a member was not delivered", "batch", b.ID, "route", b.Route, "files", b.Files,
		"failures", len(failed))
	w.batchSettled(ctx, b.ID, notify.EventBatchFailed, "")
	return nil
}

// undelivered reports whether a member settled without being delivered.
func undelivered(s ledger.State) bool {
	return s == ledger.Failed || s == ledger.Rejected || s == ledger.Quarantined
}

// announceBatch returns the hook that queues the telling of a batch's
// outcome in the transaction settling it; nil when nobody but the log
// hears of it (batchSettled logs it then).
func (w *Workers) announceBatch(client *river.Client[*sql.Tx], id, event, manifest string) func(context.Context, *sql.Tx) error {
	if !w.notifies() {
		return nil
	}
	return func(ctx context.Context, tx *sql.Tx) error {
		return insert(ctx, client, tx, batchNotifyArgs{BatchID: id, Event: event, Manifest: manifest})
	}
}

// batchSettled logs a batch's notifications when they are not sent.
func (w *Workers) batchSettled(ctx context.Context, id, event, manifest string) {
	if w.notifies() {
		return
	}
	_, msgs, err := w.batchMessages(ctx, id, event, manifest)
	if err != nil {
		w.Log.Warn("batch notification not logged", "batch", id, "event", event, "err", err)
		return
	}
	for _, msg := range msgs {
		w.Log.Info("notification not sent: no notify.smtp or notify.webhook configured",
			"batch", id, "to", strings.Join(msg.To, ","), "subject", msg.Subject)
	}
}

// batchMessages are the outcome of batch id, as its members stand now,
// and the emails that tell of it.
func (w *Workers) batchMessages(ctx context.Context, id, event, manifest string) (notify.BatchOutcome, []notify.Message, error) {
	b, err := w.Ledger.GetBatch(ctx, id)
	if err != nil {
		return notify.BatchOutcome{}, nil, err
	}
	members, err := w.Ledger.List(ctx, ledger.Filter{Batch: id})
	if err != nil {
		return notify.BatchOutcome{}, nil, err
	}
	o := notify.BatchOutcome{Event: event, Batch: id, Route: b.Route, Trigger: b.Trigger, Reruns: b.Reruns,
		Files: b.Files, Manifest: manifest, At: time.Now()}
	if b.SettledAt != nil {
		o.At = *b.SettledAt
	}
	for _, tr := range members {
		o.Bytes += tr.Size
		switch {
		case tr.State == ledger.Delivered:
			o.Delivered++
		case undelivered(tr.State):
			o.Failures = append(o.Failures, notify.BatchFailure{TransferID: tr.ID, Path: tr.Path, State: string(tr.State), Error: tr.Error})
		}
	}
	route, _ := w.Routes(b.Route) // a route no longer configured has no recipients
	o.Recipient = route.Recipient
	return o, notify.BatchMessages(o, route.Notify, w.Operators), nil
}
