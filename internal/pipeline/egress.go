package pipeline

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/storage"
)

// Route is where the transfers of one route (a push dataset) come from and
// go, as configured now: a changed target applies to what is not yet sent.
type Route struct {
	Source    string // store location the route's objects are read from
	Target    string // store location they are sent to, under their path; may hold $TODAYS_DATE
	KMSKey    string // SSE-KMS key for the target, if any
	KeepFiles bool   // leave each object in the source once it is sent
	Approval  int    // people other than the writer who must approve each transfer
	// Transform, when set, changes the bytes on their way (or the key
	// sent with them): they are streamed through it, never copied.
	Transform *Transform
	// Receiver, when set, takes the files instead of a target store, each
	// under ReceiverPrefix (which may hold $TODAYS_DATE) and its path.
	Receiver       Receiver
	ReceiverPrefix string
	// Notify and Recipient are who is told of each batch's outcome, and
	// who receives the files, for the telling.
	Notify    []string
	Recipient string
}

// egressArgs is the job that sends a transfer along its route: it hashes
// the source object, holds it for approval if the route asks for one, and
// copies it to the target.
type egressArgs struct {
	TransferID string `json:"transfer_id"`
}

func (egressArgs) Kind() string { return "egress" }

type egressWorker struct {
	river.WorkerDefaults[egressArgs]
	w *Workers
}

func (ew *egressWorker) Work(ctx context.Context, job *river.Job[egressArgs]) error {
	w := ew.w
	eg := &egress{Workers: w, client: river.ClientFromContext[*sql.Tx](ctx)}
	err := eg.run(ctx, job.Args.TransferID)
	if errors.Is(err, errNotYourTurn) {
		return river.JobSnooze(turnWait)
	}
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return w.settle(ctx, job.JobRow, job.Args.TransferID, err)
}

// egress is one run of an egress job.
type egress struct {
	*Workers
	client *river.Client[*sql.Tx]
	tr     ledger.Transfer
	route  Route
}

// run takes the transfer from whatever state it is in to its outcome.
func (eg *egress) run(ctx context.Context, id string) error {
	var err error
	if eg.tr, err = eg.Ledger.Get(ctx, id); err != nil {
		return err
	}
	switch eg.tr.State {
	case ledger.Queued, ledger.Delivering, ledger.Delivered:
	default: // held for approval, or settled
		eg.Log.Info("nothing to do for transfer", "transfer_id", id, "state", eg.tr.State)
		return nil
	}
	var ok bool
	if eg.route, ok = eg.Routes(eg.tr.Route); !ok {
		return permanent("route %s is no longer configured", eg.tr.Route)
	}
	switch eg.tr.State {
	case ledger.Queued:
		return eg.check(ctx)
	case ledger.Delivering:
		return eg.deliver(ctx)
	default: // delivered: a crash may have come before the source was removed
		return eg.removeSource(ctx)
	}
}

// source opens the store the route reads from.
func (eg *egress) source(ctx context.Context) (*storage.Store, error) {
	src, err := eg.stores.Open(ctx, eg.route.Source)
	if err != nil {
		return nil, fmt.Errorf("open source: %w", err)
	}
	return src, nil
}

// check hashes the object as it is now, so that what is approved and what
// is sent are the same bytes, and moves the transfer on: to approval if
// the route asks for it, else straight to delivery.
func (eg *egress) check(ctx context.Context) error {
	src, err := eg.source(ctx)
	if err != nil {
		return err
	}
	r, err := src.NewRangeReader(ctx, eg.tr.LandingKey, 0, -1)
	if errors.Is(err, storage.ErrNotFound) {
		return permanent("%s was removed from the source before it was sent", eg.tr.LandingKey)
	}
	if err != nil {
		return fmt.Errorf("hash source: %w", err)
	}
	defer r.Close()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return fmt.Errorf("hash source: %w", err)
	}
	if n != eg.tr.Size {
		// A newer version replaced it; that version is admitted apart.
		return permanent("%s changed before it was sent: %d bytes, not %d", eg.tr.LandingKey, n, eg.tr.Size)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if eg.tr.SHA256 != "" && sum != eg.tr.SHA256 {
		// Checked before (a retry): what was checked, and maybe approved,
		// is no longer what is there.
		return permanent("%s changed since it was first checked: sha256 %s, not %s", eg.tr.LandingKey, sum, eg.tr.SHA256)
	}
	to := ledger.Delivering
	if eg.route.Approval > 0 {
		to = ledger.AwaitingApproval
	}
	eg.tr, err = eg.Ledger.Advance(ctx, eg.tr.ID, []ledger.State{ledger.Queued}, to,
		ledger.Change{SHA256: &sum, IncAttempts: true}, ledger.Event{Detail: map[string]string{"sha256": sum}})
	if err != nil || to == ledger.AwaitingApproval {
		return err
	}
	return eg.deliver(ctx)
}

// deliver sends the object along its route (copy or send), records the
// delivery and removes the source.
func (eg *egress) deliver(ctx context.Context) error {
	if err := eg.awaitTurn(ctx, eg.tr, ledger.Filter{Direction: eg.tr.Direction, Route: eg.tr.Route, Path: eg.tr.Path,
		States: []ledger.State{ledger.Queued, ledger.AwaitingApproval, ledger.Delivering}}); err != nil {
		return err
	}
	var s sent
	var detail map[string]string
	var err error
	if eg.route.Transform == nil && eg.route.Receiver == nil {
		s.where, err = eg.copyOnce(ctx)
	} else if s, err = eg.send(ctx); err == nil {
		detail = s.outcomeDetail()
	}
	if err != nil {
		return err
	}
	if err := eg.settleOutcome(ctx, eg.client, &eg.tr, ledger.Delivering, ledger.Delivered,
		ledger.Change{Destination: &s.where, InTx: eg.batchDone}, detail); err != nil {
		return err
	}
	eg.Metrics.routeFiles.WithLabelValues(eg.tr.Route, string(ledger.Delivered)).Inc()
	eg.Metrics.routeBytes.WithLabelValues(eg.tr.Route).Add(float64(eg.tr.Size))
	eg.Log.Info("sent", "transfer_id", eg.tr.ID, "route", eg.tr.Route, "path", eg.tr.Path,
		"destination", s.where, "size", eg.tr.Size)
	return eg.removeSource(ctx)
}

// copyOnce copies the object to the route's target store unless it is
// there already (a run before a crash got that far), and returns where.
func (eg *egress) copyOnce(ctx context.Context) (string, error) {
	dst, err := eg.stores.Open(ctx, eg.target())
	if err != nil {
		return "", fmt.Errorf("open target: %w", err)
	}
	key := destinationKey(eg.tr)
	there, err := dst.Verify(ctx, key, eg.tr.Size, eg.tr.SHA256)
	if err != nil {
		return "", fmt.Errorf("deliver: %w", err)
	}
	if !there {
		if err := eg.copy(ctx, dst, key); err != nil {
			return "", err
		}
	}
	return objectLocation(dst.String(), key), nil
}

// target is the route's target store for this transfer.
func (eg *egress) target() string { return eg.dated(eg.route.Target) }

// dated is s with $TODAYS_DATE the UTC date the transfer was queued,
// whenever it is sent.
func (eg *egress) dated(s string) string { return datedOn(s, eg.tr.CreatedAt) }

// datedOn is s with $TODAYS_DATE the UTC date of day.
func datedOn(s string, day time.Time) string {
	return strings.ReplaceAll(s, config.TodaysDate, day.UTC().Format(time.DateOnly))
}

// copy streams (or has S3 copy) the source object to key of dst. The
// source is the writer's, never airlock's: it is not hard-linked, so a
// later write to it cannot change what was delivered.
func (eg *egress) copy(ctx context.Context, dst *storage.Store, key string) error {
	src, err := eg.source(ctx)
	if err != nil {
		return err
	}
	_, err = storage.Copy(ctx, dst, key, src, eg.tr.LandingKey, storage.CopyOptions{
		Size: eg.tr.Size, SHA256: eg.tr.SHA256, KMSKey: eg.route.KMSKey, Shared: true,
	})
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return permanent("%s was removed from the source before it was sent", eg.tr.LandingKey)
	case errors.Is(err, storage.ErrChecksumMismatch):
		return permanent("%s changed after it was checked: it is not sent", eg.tr.LandingKey)
	case err != nil:
		return fmt.Errorf("deliver: %w", err)
	}
	return nil
}

// removeSource deletes the sent object from the source, unless the route
// keeps files or the object there is no longer the one sent: a newer
// version written meanwhile is a transfer of its own.
func (eg *egress) removeSource(ctx context.Context) error {
	if eg.route.KeepFiles {
		return nil
	}
	src, err := eg.source(ctx)
	if err != nil {
		return err
	}
	a, err := src.Stat(ctx, eg.tr.LandingKey)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("remove source: %w", err)
	case a.Size != eg.tr.Size || eg.tr.MTime == nil || a.ModTime != eg.tr.MTime.Unix():
		eg.Log.Info("source replaced by a newer version: left for its own transfer", "transfer_id", eg.tr.ID,
			"route", eg.tr.Route, "key", eg.tr.LandingKey)
		return nil
	}
	if err := src.Delete(ctx, eg.tr.LandingKey); err != nil {
		return fmt.Errorf("remove %s from %s: %w", eg.tr.LandingKey, src, err)
	}
	return nil
}
