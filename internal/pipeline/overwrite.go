package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/storage"
)

// destPlace is where a delivery goes in the destination, and the transfer
// delivered earlier to the file's own name, which it replaces (allow) or
// is set beside (version).
type destPlace struct {
	key     string
	policy  string
	earlier *ledger.Transfer
}

// place decides where the file goes by the supplier's overwrite policy: to
// its own name, unless another transfer delivered a file there. Then allow
// replaces that file, version puts this one beside it under a name of its
// own, and deny delivers nothing: the transfer fails, its landed bytes kept
// for an operator. This catches the uploads that passed the session's check
// at open together. Every run of the job gets the same answer: the earlier
// uploads of the path are settled before this one's delivery begins
// (awaitTurn), and later ones wait for this one.
func (in *ingestion) place(ctx context.Context, dst *storage.Store, policy string) (destPlace, error) {
	pl := destPlace{key: destinationKey(in.tr), policy: cmp.Or(policy, config.OverwriteAllow)}
	var err error
	if pl.earlier, err = in.deliveredAt(ctx, objectLocation(dst.String(), pl.key)); err != nil || pl.earlier == nil {
		return pl, err
	}
	in.Log.Info("a file was delivered under this name before", "transfer_id", in.tr.ID, "path", in.tr.Path,
		"earlier_transfer_id", pl.earlier.ID, "overwrite", pl.policy)
	switch pl.policy {
	case config.OverwriteDeny:
		in.Metrics.overwrites.WithLabelValues(pl.policy).Inc()
		return destPlace{}, permanent("not delivered: %s was delivered already, by transfer %s, and the supplier's overwrite policy is deny; the landed file is kept for an operator",
			in.tr.Path, pl.earlier.ID)
	case config.OverwriteVersion:
		pl.key = versionedKey(pl.key, in.tr.ID)
	}
	return pl, nil
}

// deliveredAt returns the transfer of this supplier delivered at where,
// the location of the file's own name, or nil: an earlier upload of the
// path, or the one whose versioned copy the name spells (report.<id>.csv),
// which would otherwise be replaced unseen.
func (in *ingestion) deliveredAt(ctx context.Context, where string) (*ledger.Transfer, error) {
	trs, err := in.Ledger.List(ctx, ledger.Filter{
		Direction: ledger.Ingress, Supplier: in.tr.Supplier, Path: in.tr.Path, Destination: where, States: []ledger.State{ledger.Delivered}, Limit: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("deliver: %w", err)
	}
	if len(trs) > 0 {
		return &trs[0], nil
	}
	for _, part := range strings.Split(path.Base(in.tr.Path), ".") {
		if !ledger.IsID(part) {
			continue
		}
		tr, err := in.Ledger.Get(ctx, part)
		if errors.Is(err, ledger.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("deliver: %w", err)
		}
		if tr.Supplier == in.tr.Supplier && tr.State == ledger.Delivered && tr.Destination == where {
			return &tr, nil
		}
	}
	return nil, nil
}

// events are the audit events of a delivery that replaced a file, or was
// set beside one, with the sha256 of both.
func (pl destPlace) events(tr ledger.Transfer, where string) []ledger.Event {
	if pl.earlier == nil {
		return nil
	}
	kind := "transfer.overwrite"
	if pl.policy == config.OverwriteVersion {
		kind = "transfer.version"
	}
	return []ledger.Event{{Kind: kind, Detail: map[string]string{
		"policy":              pl.policy,
		"path":                tr.Path,
		"destination":         where,
		"size":                fmt.Sprint(tr.Size),
		"sha256":              tr.SHA256,
		"earlier_transfer_id": pl.earlier.ID,
		"earlier_destination": pl.earlier.Destination,
		"earlier_size":        fmt.Sprint(pl.earlier.Size),
		"earlier_sha256":      pl.earlier.SHA256,
	}}}
}

// versionedKey is key with the transfer id before its extension:
// report.csv becomes report.<id>.csv, so that a job run twice delivers to
// the same name.
func versionedKey(key, id string) string {
	dir, name := path.Split(key)
	ext := path.Ext(name)
	if ext == name {
		ext = ""
	}
	return dir + strings.TrimSuffix(name, ext) + "." + id + ext
}
