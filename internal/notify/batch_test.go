package notify

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

var failedBatch = BatchOutcome{
	Event: EventBatchFailed, Batch: "b1", Route: "cbol", Recipient: "Data Warehouse", Trigger: "day/pipeline_success.flag",
	Files: 3, Delivered: 2, Bytes: 3000,
	Failures: []BatchFailure{{TransferID: "t3", Path: "/c.csv\r\nBcc: x@evil.example", State: "rejected", Error: "rejected by operator:alice: wrong"}},
	At:       time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
}

// TestBatchMessages: the route's recipients and the operators hear of
// every batch, each address once; nobody to tell is no message; a
// failure's path cannot forge lines.
func TestBatchMessages(t *testing.T) {
	t.Parallel()
	delivered := failedBatch
	delivered.Event, delivered.Failures, delivered.Manifest = EventBatchDelivered, nil, "s3://dest/b1.manifest.json"
	ops := []string{"ops@example.org"}
	for _, tt := range []struct {
		name                  string
		b                     BatchOutcome
		recipients, operators []string
		want                  []string // the one message's recipients; nil: no message
	}{
		{"delivered", delivered, []string{"dw@example.org"}, ops, []string{"dw@example.org", "ops@example.org"}},
		{"delivered, no operators", delivered, []string{"dw@example.org"}, nil, []string{"dw@example.org"}},
		{"nobody", delivered, nil, nil, nil},
		{"failed", failedBatch, []string{"dw@example.org", "ops@example.org"}, ops, []string{"dw@example.org", "ops@example.org"}},
		{"failed, operators only", failedBatch, nil, ops, []string{"ops@example.org"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			msgs := BatchMessages(tt.b, tt.recipients, tt.operators)
			if tt.want == nil {
				if len(msgs) != 0 {
					t.Fatalf("messages %+v; want none", msgs)
				}
				return
			}
			if len(msgs) != 1 || !slices.Equal(msgs[0].To, tt.want) {
				t.Fatalf("messages %+v; want one to %v", msgs, tt.want)
			}
			m := msgs[0]
			word := strings.TrimPrefix(tt.b.Event, "batch.")
			if m.Subject != "airlock: batch of cbol "+word+" (3 files)" || !strings.Contains(m.Body, "airlock batches show b1") {
				t.Errorf("subject %q, body:\n%s", m.Subject, m.Body)
			}
			if strings.Contains(m.Body, "\nBcc:") {
				t.Errorf("a path forged a line:\n%s", m.Body)
			}
		})
	}
}

// TestWebhookSendBatch: a batch event is posted signed, with its failures
// (an empty list, never null, when there are none).
func TestWebhookSendBatch(t *testing.T) {
	t.Parallel()
	rc := &receiver{status: http.StatusNoContent}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	w := newTestWebhook(t, srv.URL+"/hook", nil)
	delivered := failedBatch
	delivered.Event, delivered.Failures = EventBatchDelivered, nil
	for _, b := range []BatchOutcome{failedBatch, delivered} {
		if err := w.SendBatch(t.Context(), b.Batch+":"+b.Event, b); err != nil {
			t.Fatal(err)
		}
	}
	reqs := rc.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests; want 2", len(reqs))
	}
	for i, want := range []int{1, 0} {
		r := reqs[i]
		var body struct {
			Event string         `json:"event"`
			Batch map[string]any `json:"batch"`
		}
		if err := json.Unmarshal(r.Body, &body); err != nil || !VerifySignature([]byte(hookSecret), r.Body, r.Header.Get("X-Airlock-Signature-256")) {
			t.Fatalf("request %d: %v, or its signature does not verify\n%s", i, err, r.Body)
		}
		failures, ok := body.Batch["failures"].([]any)
		if r.Header.Get("X-Airlock-Event") != body.Event || body.Batch["id"] != "b1" || body.Batch["bytes"] != 3000.0 || !ok || len(failures) != want {
			t.Errorf("request %d: %s", i, r.Body)
		}
	}
}
