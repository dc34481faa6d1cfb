package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/riverqueue/river"

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
	errs := []error{}
	for _, msg := range msgs {
		errs = append(errs, w.mail(ctx, tr, o, msg))
	}
	if w.Webhook != nil {
		errs = append(errs, w.postWebhook(ctx, tr, o))
	}
	err = errors.Join(errs...)
	if err != nil && job.Attempt >= job.MaxAttempts {
		w.Log.Error("giving up on notifications", "transfer_id", tr.ID, "event", o.Event, "err", err)
		if _, aerr := w.Ledger.Append(ctx, ledger.Event{Kind: "notify.fail", TransferID: tr.ID,
			Detail: map[string]string{"event": o.Event, "error": err.Error()}}); aerr != nil {
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

func (w *Workers) mail(ctx context.Context, tr ledger.Transfer, o notify.Outcome, msg notify.Message) error {
	to := strings.Join(msg.To, ",")
	id := fmt.Sprintf("outcome:%s:%s:mail:%s", tr.ID, o.Event, to)
	return w.once(ctx, id, tr.ID, func() (ledger.Event, error) {
		if w.Mailer == nil { // only the webhook is configured
			w.Log.Info("email not sent: no notify.smtp configured", "transfer_id", tr.ID, "to", to, "subject", msg.Subject)
			return ledger.Event{Kind: "notify.logged", Detail: map[string]string{"to": to, "subject": msg.Subject}}, nil
		}
		if err := w.Mailer.Send(ctx, msg); err != nil {
			return ledger.Event{}, fmt.Errorf("email %s: %w", to, err)
		}
		return ledger.Event{Kind: "notify.sent", Detail: map[string]string{"to": to, "subject": msg.Subject}}, nil
	})
}

func (w *Workers) postWebhook(ctx context.Context, tr ledger.Transfer, o notify.Outcome) error {
	id := fmt.Sprintf("outcome:%s:%s:webhook", tr.ID, o.Event)
	return w.once(ctx, id, tr.ID, func() (ledger.Event, error) {
		err := w.Webhook.Send(ctx, tr.ID+":"+o.Event, o)
		if errors.Is(err, notify.ErrPermanent) {
			// The receiver refuses it; asking again will not change that.
			w.Log.Error("webhook refused the notification", "transfer_id", tr.ID, "webhook", w.Webhook.Target(), "err", err)
			return ledger.Event{Kind: "notify.refused", Detail: map[string]string{"webhook": w.Webhook.Target(), "error": err.Error()}}, nil
		}
		if err != nil {
			return ledger.Event{}, err
		}
		return ledger.Event{Kind: "notify.sent", Detail: map[string]string{"webhook": w.Webhook.Target()}}, nil
	})
}

// once runs send unless notice id was recorded before, and records it
// with the audit event send returns when it is done with the notice.
func (w *Workers) once(ctx context.Context, id, transferID string, send func() (ledger.Event, error)) error {
	sent, err := w.Ledger.NoticeSent(ctx, id)
	if err != nil || sent {
		return err
	}
	ev, err := send()
	if err != nil {
		return err
	}
	ev.TransferID = transferID
	_, err = w.Ledger.RecordNotice(ctx, id, ev)
	return err
}
