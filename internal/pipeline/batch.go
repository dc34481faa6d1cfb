package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/notify"
)

// batchArgs is the job that settles a batch: once its last member is
// delivered it sends the batch's manifest to the destination, last, and
// marks the batch delivered; once a member settles undelivered, it marks
// the batch failed. Either is told of (batchNotifyArgs) exactly once.
type batchArgs struct {
	BatchID string `json:"batch_id"`
}

func (batchArgs) Kind() string { return "batch" }

type batchWorker struct {
	river.WorkerDefaults[batchArgs]
	w *Workers
}

func (bw *batchWorker) Work(ctx context.Context, job *river.Job[batchArgs]) error {
	w, id := bw.w, job.Args.BatchID
	b, err := w.Ledger.GetBatch(ctx, id)
	if err != nil {
		return err
	}
	client := river.ClientFromContext[*sql.Tx](ctx)
	switch {
	case b.Complete() && b.State != ledger.BatchDelivered: // a failed one's members may have been retried
		return w.completeBatch(ctx, client, b)
	case b.Broken() && b.State == ledger.BatchOpen:
		return w.failBatch(ctx, client, b)
	}
	return nil
}

// chain runs the hooks that are set, in order, in one transaction.
func chain(hooks ...func(context.Context, *sql.Tx, ledger.Transfer) error) func(context.Context, *sql.Tx, ledger.Transfer) error {
	return func(ctx context.Context, tx *sql.Tx, tr ledger.Transfer) error {
		for _, h := range hooks {
			if h == nil {
				continue
			}
			if err := h(ctx, tx, tr); err != nil {
				return err
			}
		}
		return nil
	}
}

// batchDone is the hook of a member's delivery: the last member's queues
// the batch's completion, in the same transaction.
func (eg *egress) batchDone(ctx context.Context, tx *sql.Tx, tr ledger.Transfer) error {
	if tr.Batch == "" {
		return nil
	}
	last, err := ledger.LastOfBatch(ctx, tx, tr.Batch)
	if err != nil || !last {
		return err
	}
	return insert(ctx, eg.client, tx, batchArgs{BatchID: tr.Batch})
}

// batchBroken returns the hook of a member settling undelivered (failed,
// rejected): it queues the settling of its batch, in the same transaction.
func batchBroken(client *river.Client[*sql.Tx]) func(context.Context, *sql.Tx, ledger.Transfer) error {
	return func(ctx context.Context, tx *sql.Tx, tr ledger.Transfer) error {
		if tr.Batch == "" {
			return nil
		}
		return insert(ctx, client, tx, batchArgs{BatchID: tr.Batch})
	}
}

// manifest is what <batch>.manifest.json holds.
type manifest struct {
	Batch     string          `json:"batch"`
	Route     string          `json:"route"`
	Trigger   string          `json:"trigger"`
	Reruns    string          `json:"reruns,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	Files     []manifestEntry `json:"files"`
}

type manifestEntry struct {
	Path      string `json:"path"`
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256"`
	SizeOut   int64  `json:"size_out"`
	SHA256Out string `json:"sha256_out"`
}

// completeBatch sends the manifest of b, whose members are all delivered,
// then marks it delivered. A run again after a crash sends the same
// manifest again.
func (w *Workers) completeBatch(ctx context.Context, client *river.Client[*sql.Tx], b ledger.Batch) error {
	id := b.ID
	route, ok := w.Routes(b.Route)
	if !ok {
		return fmt.Errorf("batch %s: route %s is no longer configured", id, b.Route)
	}
	members, err := w.Ledger.List(ctx, ledger.Filter{Batch: id})
	if err != nil {
		return err
	}
	m := manifest{Batch: id, Route: b.Route, Trigger: b.Trigger, Reruns: b.Reruns, CreatedAt: b.CreatedAt, Files: []manifestEntry{}}
	for _, tr := range members {
		e, err := w.manifestEntry(ctx, tr)
		if err != nil {
			return err
		}
		m.Files = append(m.Files, e)
	}
	slices.SortFunc(m.Files, func(a, b manifestEntry) int { return strings.Compare(a.Path, b.Path) })
	body, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	day := b.CreatedAt
	if len(members) > 0 {
		day = members[0].CreatedAt // where the members went
	}
	where, err := w.sendManifest(ctx, route, id, day, body)
	if err != nil {
		return fmt.Errorf("send the manifest of batch %s: %w", id, err)
	}
	settled, err := w.Ledger.SettleBatch(ctx, id, ledger.BatchDelivered, ledger.Event{Detail: map[string]string{
		"batch": id, "route": b.Route, "files": strconv.Itoa(b.Files), "manifest": where}},
		w.announceBatch(client, id, notify.EventBatchDelivered, where))
	if err != nil || !settled { // a run before this one settled it
		return err
	}
	w.Metrics.batchLatency.WithLabelValues(b.Route).Observe(time.Since(b.CreatedAt).Seconds())
	w.Metrics.batches.WithLabelValues(b.Route, ledger.BatchDelivered).Inc()
	w.Log.Info("batch delivered", "batch", id, "route", b.Route, "files", b.Files, "manifest", where)
	w.batchSettled(ctx, id, notify.EventBatchDelivered, where)
	return nil
}

// manifestEntry is tr's line of the manifest: the bytes read, and the
// bytes sent (the same, unless the route transformed them).
func (w *Workers) manifestEntry(ctx context.Context, tr ledger.Transfer) (manifestEntry, error) {
	e := manifestEntry{Path: tr.Path, Size: tr.Size, SHA256: tr.SHA256, SizeOut: tr.Size, SHA256Out: tr.SHA256}
	evs, err := w.Ledger.Events(ctx, tr.ID, 0)
	if err != nil {
		return e, err
	}
	for _, ev := range evs {
		if out := ev.Detail["sha256_out"]; out != "" && ev.Detail["to"] == string(ledger.Delivered) {
			e.SHA256Out = out
			e.SizeOut, _ = strconv.ParseInt(ev.Detail["size_out"], 10, 64)
		}
	}
	return e, nil
}

// sendManifest writes body as <id>.manifest.json beside the batch's files.
func (w *Workers) sendManifest(ctx context.Context, route Route, id string, day time.Time, body []byte) (string, error) {
	name := id + ".manifest.json"
	if route.Receiver != nil {
		sum := sha256.Sum256(body)
		rel := datedOn(route.ReceiverPrefix, day) + name
		err := route.Receiver.Put(ctx, rel, bytes.NewReader(body), int64(len(body)),
			FileInfo{Batch: id, SHA256: hex.EncodeToString(sum[:])})
		return route.Receiver.String() + rel, err
	}
	dst, err := w.stores.Open(ctx, datedOn(route.Target, day))
	if err != nil {
		return "", err
	}
	st, err := dst.StageWith(ctx, name, int64(len(body)), storageOptions(route))
	if err != nil {
		return "", err
	}
	if _, err := st.Write(body); err != nil {
		st.Abort()
		return "", err
	}
	return objectLocation(dst.String(), name), st.Commit()
}
