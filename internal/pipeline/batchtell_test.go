package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/notify"
)

// recordingWebhook keeps the batch events posted to it.
type recordingWebhook struct {
	mu      sync.Mutex
	batches []notify.BatchOutcome
}

func (*recordingWebhook) Send(context.Context, string, notify.Outcome) error { return nil }
func (*recordingWebhook) Target() string                                     { return "http://127.0.0.1/hook" }

func (h *recordingWebhook) SendBatch(_ context.Context, _ string, b notify.BatchOutcome) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.batches = append(h.batches, b)
	return nil
}

func (h *recordingWebhook) events() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, b := range h.batches {
		out = append(out, b.Event)
	}
	return out
}

// TestBatchFailedThenDelivered: a member removed from the source before it
// is sent fails, and with it the batch: batch.failed is audited and told
// once to the route's recipients, the operators and the webhook. Retried
// once the file is back, the batch is delivered after all, and told so.
func TestBatchFailedThenDelivered(t *testing.T) {
	t.Parallel()
	hook := &recordingWebhook{}
	f := newFlagRoute(t, fixtureOptions{maxAttempts: 1, webhook: hook}, func(src, dest string) Route {
		return Route{Source: src, Target: dest, KeepFiles: true, Notify: []string{"dw@example.org"}, Recipient: "Data Warehouse"}
	})
	srcDir := f.srcDir
	f.write(t, "day/a.csv", "day/b.csv", "day/pipeline_success.flag")
	f.found(t, "day/pipeline_success.flag")
	// b.csv goes before it is sent: its transfer fails, and the batch.
	if err := os.Remove(filepath.Join(srcDir, "day", "b.csv")); err != nil {
		t.Fatal(err)
	}
	f.run()
	bs := mustBatches(t, f.ledger)
	waitBatch(t, f.ledger, bs[0].ID, ledger.BatchFailed)
	batchMailsNow := func() []notify.Message {
		var out []notify.Message
		for _, m := range f.mailer.sent() {
			if strings.Contains(m.Subject, "batch of cbol") {
				out = append(out, m)
			}
		}
		return out
	}
	batchMails := func(n int) []notify.Message {
		for deadline := time.Now().Add(20 * time.Second); len(batchMailsNow()) < n && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
		return batchMailsNow()
	}
	failed := batchMails(1)
	if len(failed) != 1 || !slices.Equal(failed[0].To, []string{"dw@example.org", "ops@example.org"}) ||
		!strings.Contains(failed[0].Subject, "failed") || !strings.Contains(failed[0].Body, "b.csv") {
		t.Fatalf("batch emails = %+v; want one batch.failed to dw and ops naming b.csv", failed)
	}
	b := mustBatches(t, f.ledger)[0]
	var missing ledger.Transfer
	for _, tr := range mustList(t, f.ledger, ledger.Filter{Batch: b.ID}) {
		if tr.State == ledger.Failed {
			missing = tr
		}
	}
	if missing.ID == "" || !strings.HasSuffix(missing.Path, "b.csv") {
		t.Fatalf("batch %+v: want b.csv failed", b)
	}
	// Back, and retried by an operator: the batch completes after all.
	writeFile(t, filepath.Join(srcDir, "day", "b.csv"), []byte("day/b.csv"))
	op := &Operator{Ledger: f.ledger, Queue: f.queue, Actor: "operator:test", Routes: f.deps.Routes}
	if _, err := op.Retry(t.Context(), missing.ID); err != nil {
		t.Fatal(err)
	}
	waitBatch(t, f.ledger, b.ID, ledger.BatchDelivered)
	mails := batchMails(2)
	if len(mails) != 2 || !slices.Equal(mails[1].To, []string{"dw@example.org", "ops@example.org"}) || !strings.Contains(mails[1].Subject, "delivered") {
		t.Fatalf("batch emails = %+v; want batch.delivered to dw after batch.failed", mails)
	}
	for deadline := time.Now().Add(20 * time.Second); len(hook.events()) < 2 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // a second telling would come about now
	if got := hook.events(); !slices.Equal(got, []string{notify.EventBatchFailed, notify.EventBatchDelivered}) {
		t.Errorf("webhook batch events = %v; want failed, then delivered, once each", got)
	}
	if n := len(batchMailsNow()); n != 2 {
		t.Errorf("%d batch emails; want 2", n)
	}
	kinds := map[string]int{}
	evs, err := f.ledger.Events(t.Context(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Detail["batch"] == b.ID {
			kinds[ev.Kind]++
		}
	}
	if kinds["batch.failed"] != 1 || kinds["batch.delivered"] != 1 {
		t.Errorf("audit events of the batch: %v; want batch.failed and batch.delivered once each", kinds)
	}
}

func mustBatches(t *testing.T, l *ledger.Ledger) []ledger.Batch {
	t.Helper()
	bs, err := l.Batches(t.Context(), ledger.BatchFilter{})
	if err != nil || len(bs) == 0 {
		t.Fatalf("batches = %+v, %v", bs, err)
	}
	return bs
}
