package pipeline

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/notify"
	"github.com/airlock-gw/airlock/internal/scan"
	"github.com/airlock-gw/airlock/internal/storage"
)

// Scanner scans one stream for malware; *scan.Clamd and *scan.Builtin are
// scanners.
type Scanner interface {
	Scan(ctx context.Context, r io.Reader) (scan.Result, error)
}

// digestScanner is a scanner that hashes what it reads anyway
// (*scan.Builtin): an ingestion takes its digest rather than hash the file
// a second time.
type digestScanner interface {
	ScanDigest(ctx context.Context, r io.Reader) (scan.Result, scan.Digest, error)
}

var _ digestScanner = (*scan.Builtin)(nil)

// Mailer sends one email; *notify.Mailer is one.
type Mailer interface {
	Send(ctx context.Context, msg notify.Message) error
}

// Webhook posts one outcome; *notify.Webhook is one.
type Webhook interface {
	Send(ctx context.Context, deliveryID string, o notify.Outcome) error
	SendBatch(ctx context.Context, deliveryID string, b notify.BatchOutcome) error
	Target() string
}

// Deps are what the workers work with.
type Deps struct {
	Ledger     *ledger.Ledger
	Landing    *storage.Store
	Quarantine *storage.Store
	Suppliers  func() *config.Suppliers
	// Routes looks up a route (a push dataset) by name, as configured now.
	Routes func(name string) (Route, bool)
	// Retention lists the pull buckets whose old objects are deleted, as
	// configured now; nil: none.
	Retention func() []Retention
	Scanner   Scanner
	// TooLarge is what happens to a file the scanner would not scan
	// whole: config.TooLargeQuarantine or config.TooLargeDeliver.
	TooLarge  string
	Mailer    Mailer // nil: emails are logged, not sent
	Operators []string
	Webhook   Webhook // nil: no webhook
	Metrics   *Metrics
	Log       *slog.Logger
}

// Workers run the pipeline's jobs.
type Workers struct {
	Deps
	river  *river.Workers
	stores storage.Cache // destinations
}

// NewWorkers returns the workers for Open.
func NewWorkers(d Deps) *Workers {
	w := &Workers{Deps: d, river: river.NewWorkers()}
	// A destination's first use in this process: what a crash left half
	// written can go, and what other nodes sharing the directory are
	// writing stays (see storage.ClearStaging).
	w.stores.Opened = func(st *storage.Store) error {
		_, err := st.ClearStaging()
		return err
	}
	river.AddWorker(w.river, &ingestWorker{w: w})
	river.AddWorker(w.river, &egressWorker{w: w})
	river.AddWorker(w.river, &batchWorker{w: w})
	river.AddWorker(w.river, &notifyWorker{w: w})
	river.AddWorker(w.river, &batchNotifyWorker{w: w})
	river.AddWorker(w.river, &reconcileWorker{w: w})
	river.AddWorker(w.river, &retentionWorker{w: w})
	return w
}

// Close closes the destination stores the workers opened.
func (w *Workers) Close() error { return w.stores.Close() }

// settle decides what a failed attempt means. A permanent error, or any
// error on the last attempt, fails the transfer for good (an operator can
// retry it); anything else is recorded on the transfer and retried later.
func (w *Workers) settle(ctx context.Context, job *rivertype.JobRow, id string, err error) error {
	if err == nil {
		return nil
	}
	tr, gerr := w.Ledger.Get(ctx, id)
	if gerr != nil {
		return errors.Join(err, gerr)
	}
	log := w.Log.With("transfer_id", id, "attempt", job.Attempt, "max_attempts", job.MaxAttempts)
	msg := err.Error()
	if !isPending(tr.State) {
		log.Error("job failed after the transfer settled", "state", tr.State, "err", err)
		return nil
	}
	if errors.Is(err, ErrPermanent) || job.Attempt >= job.MaxAttempts {
		client := river.ClientFromContext[*sql.Tx](ctx)
		failed, aerr := w.Ledger.Advance(ctx, id, pending, ledger.Failed, ledger.Change{
			Error: &msg,
			InTx:  chain(w.announce(client), batchBroken(client)),
		}, ledger.Event{Kind: "transfer.failed", Detail: map[string]string{"error": msg, "attempts": fmt.Sprint(job.Attempt)}})
		if aerr != nil {
			return errors.Join(err, aerr)
		}
		w.settled(failed)
		if tr.Route != "" {
			w.Metrics.routeFiles.WithLabelValues(tr.Route, string(ledger.Failed)).Inc()
		}
		log.Error("transfer failed", "supplier", tr.Supplier, "path", tr.Path, "err", err)
		return nil
	}
	w.Metrics.retries.WithLabelValues(job.Kind).Inc()
	if _, aerr := w.Ledger.Advance(ctx, id, []ledger.State{tr.State}, tr.State, ledger.Change{Error: &msg},
		ledger.Event{Kind: "transfer.retry", Detail: map[string]string{"error": msg, "attempt": fmt.Sprint(job.Attempt)}}); aerr != nil {
		log.Error("record retry", "err", aerr)
	}
	log.Warn("transfer step failed; will retry", "state", tr.State, "err", err)
	return err
}

// announce returns the hook that queues the notifications of an outcome
// in the transaction recording it, or nil when there is nobody to notify
// but the log: then settled logs them, without a job or its commits.
func (w *Workers) announce(client *river.Client[*sql.Tx]) func(context.Context, *sql.Tx, ledger.Transfer) error {
	if !w.notifies() {
		return nil
	}
	return func(ctx context.Context, tx *sql.Tx, tr ledger.Transfer) error {
		return insert(ctx, client, tx, notifyArgs{TransferID: tr.ID, State: tr.State})
	}
}

// settled counts an outcome, and logs its notifications when they are not
// sent.
func (w *Workers) settled(tr ledger.Transfer) {
	w.Metrics.outcomes.WithLabelValues(string(tr.State)).Inc()
	if w.notifies() {
		return
	}
	_, msgs := w.messages(tr, tr.State)
	for _, msg := range msgs {
		w.Log.Info("notification not sent: no notify.smtp or notify.webhook configured",
			"transfer_id", tr.ID, "to", strings.Join(msg.To, ","), "subject", msg.Subject)
	}
}

// notifies reports whether anyone but the log hears of outcomes.
func (w *Workers) notifies() bool { return w.Mailer != nil || w.Webhook != nil }

// messages are the outcome state of tr and the emails that tell of it, to
// the supplier (as configured now) and the operators.
func (w *Workers) messages(tr ledger.Transfer, state ledger.State) (notify.Outcome, []notify.Message) {
	o := outcome(tr, state)
	var email string
	if s, ok := w.Suppliers().Lookup(tr.Supplier); ok {
		email = s.Email
	}
	return o, notify.OutcomeMessages(o, email, w.Operators)
}

// ErrPermanent marks an error that no retry can fix; a Receiver wraps it.
var ErrPermanent = errors.New("permanent")

func permanent(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrPermanent, fmt.Sprintf(format, args...))
}

// objectLocation names key inside the store at location, for the ledger's
// destination column: the key joins the path, before any query.
func objectLocation(location, key string) string {
	base, query, hasQuery := strings.Cut(location, "?")
	out := strings.TrimSuffix(base, "/") + "/" + key
	if hasQuery {
		out += "?" + query
	}
	return out
}
