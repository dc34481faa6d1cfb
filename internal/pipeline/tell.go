package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/notify"
)

// notifyArgs is the job that tells the supplier, the operators and the
// webhook about an outcome. It is its own job so that an unreachable mail
// server or webhook is retried without touching the file again.
type notifyArgs struct {
	TransferID string       `json:"transfer_id"`
	State      ledger.State `json:"state"` // the outcome being told
}

func (notifyArgs) Kind() string { return "notify" }

type notifyWorker struct {
	river.WorkerDefaults[notifyArgs]
	w *Workers
}

// Work sends each message that has not gone out yet. The ledger's notices
// remember what was sent, so a retry after one channel failed does not
// repeat the others.
func (nw *notifyWorker) Work(ctx context.Context, job *river.Job[notifyArgs]) error {
	w := nw.w
	tr, err := w.Ledger.Get(ctx, job.Args.TransferID)
	if err != nil {
		return err
	}
	o, msgs := w.messages(tr, job.Args.State)
	n := notice{key: fmt.Sprintf("outcome:%s:%s", tr.ID, o.Event), event: o.Event, transferID: tr.ID}
	return w.tell(ctx, job.JobRow, n, msgs, func(ctx context.Context) error {
		return w.Webhook.Send(ctx, tr.ID+":"+o.Event, o)
	})
}

// notice is what one notification job tells of: an outcome of a transfer
// or of a batch.
type notice struct {
	key               string // the notices' ids start with it
	event             string // e.g. "transfer.delivered"
	transferID, batch string // what it is about: one of the two
}

// auditEvent is the audit event of a notice, about its transfer or batch.
func (n notice) auditEvent(kind string, detail map[string]string) ledger.Event {
	if n.batch != "" {
		detail["batch"] = n.batch
	}
	return ledger.Event{Kind: kind, TransferID: n.transferID, Detail: detail}
}

// logArgs names the notice's subject in a log line.
func (n notice) logArgs() []any {
	if n.batch != "" {
		return []any{"batch", n.batch, "event", n.event}
	}
	return []any{"transfer_id", n.transferID, "event", n.event}
}

// tell sends msgs and, when there is a webhook, post, each unless sent
// before; on the job's last attempt a failure is audited and given up.
func (w *Workers) tell(ctx context.Context, job *rivertype.JobRow, n notice, msgs []notify.Message, post func(context.Context) error) error {
	errs := []error{}
	for _, msg := range msgs {
		errs = append(errs, w.mail(ctx, n, msg))
	}
	if w.Webhook != nil {
		errs = append(errs, w.postWebhook(ctx, n, post))
	}
	err := errors.Join(errs...)
	if err != nil && job.Attempt >= job.MaxAttempts {
		w.Log.Error("giving up on notifications", append(n.logArgs(), "err", err)...)
		if _, aerr := w.Ledger.Append(ctx, n.auditEvent("notify.fail", map[string]string{"event": n.event, "error": err.Error()})); aerr != nil {
			w.Log.Error("append audit event", "kind", "notify.fail", "err", aerr)
		}
		return nil
	}
	if err != nil {
		w.Metrics.retries.WithLabelValues(job.Kind).Inc()
	}
	return err
}

func outcome(tr ledger.Transfer, state ledger.State) notify.Outcome {
	return notify.Outcome{
		Event:       "transfer." + string(state),
		TransferID:  tr.ID,
		Supplier:    tr.Supplier,
		Path:        tr.Path,
		Size:        tr.Size,
		SHA256:      tr.SHA256,
		ScanResult:  tr.ScanResult,
		Destination: tr.Destination,
		Error:       tr.Error,
		At:          tr.UpdatedAt,
	}
}

func (w *Workers) mail(ctx context.Context, n notice, msg notify.Message) error {
	to := strings.Join(msg.To, ",")
	return w.once(ctx, n.key+":mail:"+to, func() (ledger.Event, error) {
		if w.Mailer == nil { // only the webhook is configured
			w.Log.Info("email not sent: no notify.smtp configured", append(n.logArgs(), "to", to, "subject", msg.Subject)...)
			return n.auditEvent("notify.logged", map[string]string{"to": to, "subject": msg.Subject}), nil
		}
		if err := w.Mailer.Send(ctx, msg); err != nil {
			return ledger.Event{}, fmt.Errorf("email %s: %w", to, err)
		}
		return n.auditEvent("notify.sent", map[string]string{"to": to, "subject": msg.Subject}), nil
	})
}

func (w *Workers) postWebhook(ctx context.Context, n notice, post func(context.Context) error) error {
	return w.once(ctx, n.key+":webhook", func() (ledger.Event, error) {
		err := post(ctx)
		if errors.Is(err, notify.ErrPermanent) {
			// The receiver refuses it; asking again will not change that.
			w.Log.Error("webhook refused the notification", append(n.logArgs(), "webhook", w.Webhook.Target(), "err", err)...)
			return n.auditEvent("notify.refused", map[string]string{"webhook": w.Webhook.Target(), "error": err.Error()}), nil
		}
		if err != nil {
			return ledger.Event{}, err
		}
		return n.auditEvent("notify.sent", map[string]string{"webhook": w.Webhook.Target()}), nil
	})
}

// once runs send unless notice id was recorded before, and records it
// with the audit event send returns when it is done with the notice.
func (w *Workers) once(ctx context.Context, id string, send func() (ledger.Event, error)) error {
	sent, err := w.Ledger.NoticeSent(ctx, id)
	if err != nil || sent {
		return err
	}
	ev, err := send()
	if err != nil {
		return err
	}
	_, err = w.Ledger.RecordNotice(ctx, id, ev)
	return err
}
