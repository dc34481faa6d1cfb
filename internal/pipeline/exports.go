package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/storage"
)

// Source admits the objects of one store as transfers along routes.
type Source struct {
	Ledger  *ledger.Ledger
	Queue   *Queue
	Store   *storage.Store
	Metrics *Metrics
	Log     *slog.Logger
}

// newTransfer makes the transfer of the object at key, of size bytes
// written at mtime, along route, at path "/"+rel. ok is false when the
// object is gone again.
func (s *Source) newTransfer(ctx context.Context, route, key, rel string, size int64, mtime time.Time) (t ledger.Transfer, ok bool, err error) {
	writer, err := s.Store.Owner(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return ledger.Transfer{}, false, nil // gone again: nothing to send
	}
	if err != nil {
		return ledger.Transfer{}, false, fmt.Errorf("admit %s: %w", key, err)
	}
	mtime = mtime.UTC()
	return ledger.NewTransfer(ledger.Transfer{
		Direction: ledger.Egress, State: ledger.Queued, Supplier: cmp.Or(writer, unknownWriter),
		Route: route, Path: "/" + rel, Size: size, LandingKey: key, MTime: &mtime, Node: s.Queue.node,
	}), true, nil
}

// admit admits the object at key along route, unless that version of it
// was admitted before. It is safe to call again for the same object, from
// any node.
func (s *Source) admit(ctx context.Context, route, key, rel string, size int64, mtime time.Time) error {
	t, ok, err := s.newTransfer(ctx, route, key, rel, size, mtime)
	if !ok || err != nil {
		return err
	}
	t, err = s.Ledger.Admit(ctx, t, ledger.Event{Detail: map[string]string{"key": key}}, s.Queue.Admit)
	if errors.Is(err, ledger.ErrAdmitted) {
		return nil
	}
	if err != nil {
		return err
	}
	s.Metrics.exports.WithLabelValues("queued").Inc()
	s.Log.Info("export queued", "transfer_id", t.ID, "route", route, "path", t.Path, "size", size, "writer", t.Supplier)
	return nil
}

// Exports admits what dataset users write into the export area (the push
// area): an object under <dataset>/ of a push dataset becomes an egress
// transfer along that dataset's route. Any other object is never sent; it
// is reported once (log, metric, audit event "export.unrouted").
type Exports struct {
	Source
	// Routes looks up a push dataset by name; pull datasets are not routes.
	Routes func(name string) (Route, bool)
}

// Found admits the object at key, of size bytes written at mtime, unless
// that version of it was admitted before.
func (e *Exports) Found(ctx context.Context, key string, size int64, mtime time.Time) error {
	name, rel, _ := strings.Cut(key, "/")
	if _, ok := e.Routes(name); !ok {
		return e.unrouted(ctx, key, mtime, fmt.Sprintf("%q is not a push dataset", name))
	}
	if why := unsafeKey(rel); why != "" {
		return e.unrouted(ctx, key, mtime, why)
	}
	return e.admit(ctx, name, key, rel, size, mtime)
}

// unknownWriter stands for the writer of an object whose store keeps no
// owner.
const unknownWriter = "unknown"

// unrouted reports an object that goes nowhere, once per version of it
// across restarts and nodes.
func (e *Exports) unrouted(ctx context.Context, key string, mtime time.Time, why string) error {
	id := fmt.Sprintf("export-unrouted:%s:%d", key, mtime.UnixNano())
	first, err := e.Ledger.RecordNotice(ctx, id, ledger.Event{Kind: "export.unrouted",
		Detail: map[string]string{"key": key, "reason": why}})
	if err != nil || !first {
		return err
	}
	e.Metrics.exports.WithLabelValues("unrouted").Inc()
	e.Log.Warn("export not sent: it is under no push dataset", "key", key, "reason", why)
	return nil
}

// unsafeKey says why rel, the path below a dataset's prefix, may not be
// sent under the same name, or "" when it may: it must name a file in a
// tree, with no empty, "." or ".." segment and no control character.
func unsafeKey(rel string) string {
	if rel == "" {
		return "not below a dataset's prefix"
	}
	if strings.ContainsFunc(rel, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "a control character in the name"
	}
	for seg := range strings.SplitSeq(rel, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Sprintf("the path segment %q", seg)
		}
	}
	return ""
}
