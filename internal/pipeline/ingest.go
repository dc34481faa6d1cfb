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
	"github.com/airlock-gw/airlock/internal/scan"
	"github.com/airlock-gw/airlock/internal/storage"
)

// ingestArgs is the job that scans a received file and then quarantines or
// delivers it.
type ingestArgs struct {
	TransferID string `json:"transfer_id"`
	// FromQuarantine: an operator released the file, so its bytes are in
	// the quarantine store rather than in landing.
	FromQuarantine bool `json:"from_quarantine,omitempty"`
	// SkipScan: the operator released it without a rescan.
	SkipScan bool `json:"skip_scan,omitempty"`
}

func (ingestArgs) Kind() string { return "ingest" }

type ingestWorker struct {
	river.WorkerDefaults[ingestArgs]
	w *Workers
}

func (iw *ingestWorker) Work(ctx context.Context, job *river.Job[ingestArgs]) error {
	w := iw.w
	in := &ingestion{Workers: w, args: job.Args, landed: job.CreatedAt, client: river.ClientFromContext[*sql.Tx](ctx)}
	err := in.run(ctx)
	if errors.Is(err, errNotYourTurn) {
		// Waiting is no failure: it costs no attempt and records nothing.
		return river.JobSnooze(turnWait)
	}
	if err != nil && ctx.Err() != nil {
		// Cut short by the node stopping (Queue.Run): no failure either.
		// River makes the job available again at once.
		return ctx.Err()
	}
	return w.settle(ctx, job.JobRow, job.Args.TransferID, err)
}

// errNotYourTurn says that an earlier upload of the same path is still on
// its way: delivering this one first would let the older overwrite it.
var errNotYourTurn = errors.New("an earlier upload of the same path is still on its way")

// turnWait is how long a delivery waits before it looks again.
const turnWait = time.Second

// ingestion is one run of an ingest job.
type ingestion struct {
	*Workers
	args   ingestArgs
	landed time.Time // when the job was queued: the file had just landed
	client *river.Client[*sql.Tx]
	tr     ledger.Transfer
}

// source is where the file's bytes are now.
func (in *ingestion) source() (*storage.Store, string) {
	if in.args.FromQuarantine {
		return in.Quarantine, quarantineKey(in.tr)
	}
	return in.Landing, in.tr.LandingKey
}

// quarantineKey is <supplier>/<transfer id>/<path as uploaded>, so that an
// operator browsing the store sees whose file it is and which transfer.
func quarantineKey(tr ledger.Transfer) string {
	return tr.Supplier + "/" + tr.ID + "/" + strings.TrimPrefix(tr.Path, "/")
}

// run takes the transfer from whatever state it is in to its outcome.
func (in *ingestion) run(ctx context.Context) error {
	var err error
	if in.tr, err = in.Ledger.Get(ctx, in.args.TransferID); err != nil {
		return err
	}
	switch in.tr.State {
	case ledger.Received, ledger.Scanning:
		if in.args.SkipScan {
			return in.releaseUnscanned(ctx)
		}
		return in.scan(ctx)
	case ledger.Delivering:
		return in.deliver(ctx)
	case ledger.Delivered, ledger.Quarantined:
		// The outcome is recorded; a crash may have come before the source
		// was removed.
		return in.removeSource(ctx)
	default:
		in.Log.Info("nothing to do for transfer", "transfer_id", in.tr.ID, "state", in.tr.State)
		return nil
	}
}

func (in *ingestion) scan(ctx context.Context) error {
	var err error
	in.tr, err = in.Ledger.Advance(ctx, in.tr.ID, []ledger.State{ledger.Received, ledger.Scanning}, ledger.Scanning,
		ledger.Change{IncAttempts: true}, ledger.Event{})
	if err != nil {
		return err
	}
	src, key := in.source()
	r, err := src.NewRangeReader(ctx, key, 0, -1)
	if errors.Is(err, storage.ErrNotFound) {
		return in.sourceGone(ctx, src, err)
	}
	if err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	defer r.Close()
	res, read, err := in.scanDigest(ctx, r)
	if err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	in.Metrics.scans.WithLabelValues(string(res.Verdict)).Inc()
	verdict := res.String()
	in.Log.Info("scanned", "transfer_id", in.tr.ID, "supplier", in.tr.Supplier, "path", in.tr.Path, "result", verdict)

	// What was read, when the scanner read it all (it stops early only on
	// a file too large for it): the bytes as they are now.
	got := hex.EncodeToString(read.SHA256[:])
	whole := res.Verdict != scan.TooLarge
	switch {
	case whole && (read.Size != in.tr.Size || got != in.tr.SHA256):
		// The bytes changed after the upload was acknowledged: they are
		// not what the supplier sent, so they go nowhere but quarantine.
		return in.quarantine(ctx, fmt.Sprintf("checksum-mismatch: %d bytes with sha256 %s, uploaded %d bytes with sha256 %s (%s)",
			read.Size, got, in.tr.Size, in.tr.SHA256, verdict), read.Size, got)
	case res.Verdict == scan.Clean:
		return in.toDelivery(ctx, verdict)
	case res.Verdict == scan.TooLarge && in.TooLarge == config.TooLargeDeliver:
		return in.toDelivery(ctx, verdict+"; delivered unscanned as scanner.too_large says")
	default:
		return in.quarantine(ctx, verdict, in.tr.Size, in.tr.SHA256)
	}
}

// sourceGone settles a transfer whose bytes are gone from where the scan
// reads them. A delivery is recorded with a relaxed commit and its source
// removed right after (see ledger.commitInto), so a crash of the machine
// can undo the record of a delivery that did happen, and its re-run finds
// the source gone. The file was delivered if the destination holds exactly
// the uploaded bytes, which the delivery then verifies again and records;
// otherwise the file is lost, and no retry can bring it back.
func (in *ingestion) sourceGone(ctx context.Context, src *storage.Store, cause error) error {
	dst, sup, err := in.destination(ctx)
	if err != nil {
		return err
	}
	pl, err := in.place(ctx, dst, sup.Overwrite)
	if err != nil {
		return err
	}
	delivered, err := dst.Verify(ctx, pl.key, in.tr.Size, in.tr.SHA256)
	if err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	if !delivered {
		return permanent("the file is gone from %s: %v", src, cause)
	}
	in.Log.Warn("source gone, but the destination holds the file: recording its delivery",
		"transfer_id", in.tr.ID, "supplier", in.tr.Supplier, "path", in.tr.Path, "source", src.String())
	// The scan result shows in the supplier's receipt: no store names.
	return in.toDelivery(ctx, "not scanned again: already delivered")
}

// scanDigest scans r and returns the digest of what the scanner read: the
// scanner's own when it hashes anyway, else hashed on the way.
func (in *ingestion) scanDigest(ctx context.Context, r io.Reader) (scan.Result, scan.Digest, error) {
	if d, ok := in.Scanner.(digestScanner); ok {
		return d.ScanDigest(ctx, r)
	}
	h := sha256.New()
	counted := &countingWriter{w: h}
	res, err := in.Scanner.Scan(ctx, io.TeeReader(r, counted))
	read := scan.Digest{Size: counted.n}
	h.Sum(read.SHA256[:0])
	return res, read, err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.w.Write(p)
}

// releaseUnscanned moves a released file on without a rescan, as the
// operator asked; the scan result says so.
func (in *ingestion) releaseUnscanned(ctx context.Context) error {
	return in.toDelivery(ctx, in.tr.ScanResult+"; released without a rescan")
}

// toDelivery records the scan result and moves the transfer on to
// delivery, which may then be retried without scanning again.
func (in *ingestion) toDelivery(ctx context.Context, scanResult string) error {
	noError := ""
	var err error
	in.tr, err = in.Ledger.Advance(ctx, in.tr.ID, []ledger.State{ledger.Received, ledger.Scanning}, ledger.Delivering,
		ledger.Change{ScanResult: &scanResult, Error: &noError}, ledger.Event{Detail: map[string]string{"scan_result": scanResult}})
	if err != nil {
		return err
	}
	return in.deliver(ctx)
}

// destinationKey is the path as uploaded, below the destination's prefix.
func destinationKey(tr ledger.Transfer) string { return strings.TrimPrefix(tr.Path, "/") }

// destination opens the supplier's destination as configured now, and
// returns the supplier with it: a changed destination or overwrite policy
// applies to files not yet delivered.
func (in *ingestion) destination(ctx context.Context) (*storage.Store, *config.Supplier, error) {
	s, ok := in.Suppliers().Lookup(in.tr.Supplier)
	if !ok {
		return nil, nil, fmt.Errorf("supplier %s is no longer configured: its destination is unknown", in.tr.Supplier)
	}
	st, err := in.stores.Open(ctx, s.Destination.URL)
	if err != nil {
		return nil, nil, fmt.Errorf("open destination: %w", err)
	}
	return st, s, nil
}

// deliver copies the file to its supplier's destination unless it is
// already there (a run before a crash got that far), records the delivery
// and removes the source.
func (in *ingestion) deliver(ctx context.Context) error {
	if err := in.awaitTurn(ctx); err != nil {
		return err
	}
	dst, sup, err := in.destination(ctx)
	if err != nil {
		return err
	}
	pl, err := in.place(ctx, dst, sup.Overwrite)
	if err != nil {
		return err
	}
	key := pl.key
	there, err := dst.Verify(ctx, key, in.tr.Size, in.tr.SHA256)
	if err != nil {
		return fmt.Errorf("deliver: %w", err)
	}
	if !there {
		src, srcKey := in.source()
		res, err := storage.Copy(ctx, dst, key, src, srcKey, storage.CopyOptions{
			Size: in.tr.Size, SHA256: in.tr.SHA256, KMSKey: sup.Destination.KMSKey,
		})
		if errors.Is(err, storage.ErrChecksumMismatch) {
			return permanent("deliver: the stored bytes no longer match the upload: %v", err)
		}
		if err != nil {
			return fmt.Errorf("deliver: %w", err)
		}
		in.Log.Debug("copied", "transfer_id", in.tr.ID, "server_side", res.ServerSide, "linked", res.Linked)
	}
	where := objectLocation(dst.String(), key)
	if err := in.settleOutcome(ctx, ledger.Delivering, ledger.Delivered, ledger.Change{Destination: &where, Also: pl.events(in.tr, where)}, nil); err != nil {
		return err
	}
	if pl.earlier != nil {
		in.Metrics.overwrites.WithLabelValues(pl.policy).Inc()
	}
	in.Metrics.latency.Observe(time.Since(in.landed).Seconds())
	in.Log.Info("delivered", "transfer_id", in.tr.ID, "supplier", in.tr.Supplier, "path", in.tr.Path,
		"destination", in.tr.Destination, "size", in.tr.Size)
	return in.removeSource(ctx)
}

// awaitTurn returns errNotYourTurn while an earlier upload of the same
// path by the same supplier is in the pipeline, so that uploads of a path
// reach the destination in the order they began and the last one wins.
// Earlier uploads never wait for later ones, so the wait always ends. One
// still being received is not waited for: its session may be on a node
// that died, and nothing would settle it.
func (in *ingestion) awaitTurn(ctx context.Context) error {
	return in.Workers.awaitTurn(ctx, in.tr, ledger.Filter{Direction: ledger.Ingress, Supplier: in.tr.Supplier, Path: in.tr.Path, States: pending})
}

// awaitTurn returns errNotYourTurn while a transfer that f selects and
// that began before tr has not settled: transfers of one path reach their
// destination in the order they began.
func (w *Workers) awaitTurn(ctx context.Context, tr ledger.Transfer, f ledger.Filter) error {
	trs, err := w.Ledger.List(ctx, f)
	if err != nil {
		return fmt.Errorf("deliver: %w", err)
	}
	for _, other := range trs {
		if other.ID < tr.ID { // ids sort by creation time
			w.Log.Debug("delivery waits for an earlier transfer of the same path", "transfer_id", tr.ID, "earlier", other.ID)
			return errNotYourTurn
		}
	}
	return nil
}

// quarantine moves the file to the quarantine store with what was found.
// size and sha256 describe the bytes as they are now.
func (in *ingestion) quarantine(ctx context.Context, scanResult string, size int64, sha string) error {
	key := quarantineKey(in.tr)
	if !in.args.FromQuarantine {
		there, err := in.Quarantine.Verify(ctx, key, size, sha)
		if err != nil {
			return fmt.Errorf("quarantine: %w", err)
		}
		if !there {
			if _, err := storage.Copy(ctx, in.Quarantine, key, in.Landing, in.tr.LandingKey,
				storage.CopyOptions{Size: size, SHA256: sha}); err != nil {
				return fmt.Errorf("quarantine: %w", err)
			}
		}
	}
	where := objectLocation(in.Quarantine.String(), key)
	ch := ledger.Change{ScanResult: &scanResult, Destination: &where}
	if err := in.settleOutcome(ctx, ledger.Scanning, ledger.Quarantined, ch, map[string]string{"scan_result": scanResult}); err != nil {
		return err
	}
	in.Log.Warn("quarantined", "transfer_id", in.tr.ID, "supplier", in.tr.Supplier, "path", in.tr.Path, "scan_result", scanResult)
	return in.removeSource(ctx)
}

// settleOutcome records the outcome and queues its notifications, together.
func (in *ingestion) settleOutcome(ctx context.Context, from, to ledger.State, ch ledger.Change, detail map[string]string) error {
	return in.Workers.settleOutcome(ctx, in.client, &in.tr, from, to, ch, detail)
}

// settleOutcome moves *tr from from into the outcome to, with ch and the
// event detail, and queues the outcome's notifications in the same
// transaction (before ch.InTx, if set), and the settling of its batch when
// it is not delivered; *tr becomes the transfer as recorded.
func (w *Workers) settleOutcome(ctx context.Context, client *river.Client[*sql.Tx], tr *ledger.Transfer,
	from, to ledger.State, ch ledger.Change, detail map[string]string) error {
	noError := ""
	ch.Error = &noError
	ch.InTx = chain(w.announce(client), ch.InTx)
	if to != ledger.Delivered {
		ch.InTx = chain(ch.InTx, batchBroken(client))
	}
	settled, err := w.Ledger.Advance(ctx, tr.ID, []ledger.State{from}, to, ch, ledger.Event{Detail: detail})
	if err != nil {
		return err
	}
	*tr = settled
	w.settled(settled)
	return nil
}

// removeSource deletes the bytes the transfer was delivered or quarantined
// from; a released file that went back to quarantine stays where it is.
func (in *ingestion) removeSource(ctx context.Context) error {
	if in.args.FromQuarantine && in.tr.State == ledger.Quarantined {
		return nil
	}
	src, key := in.source()
	if err := src.Delete(ctx, key); err != nil {
		return fmt.Errorf("remove %s from %s: %w", key, src, err)
	}
	return nil
}
