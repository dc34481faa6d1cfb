package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/storage"
)

// RouteSource admits what appears under one route's watched prefix: each
// object on its own, or, with a flag, every other object under the prefix
// as one batch when the flag appears. An object written after the flag
// belongs to no batch until the next flag; the flag itself is never sent.
type RouteSource struct {
	Source
	Route  string
	Prefix string // the watched prefix in Store (today's, for a dated source)
	Flag   string // "" admits each object
	// Release makes it a release inbox: Flag is the release's manifest,
	// and a batch is admitted, as releases, only when the files match it
	// and Scanner finds them clean (releaseFiles).
	Release bool
	Scanner Scanner
}

// Found admits the object at key, of size bytes written at mtime.
func (rs *RouteSource) Found(ctx context.Context, key string, size int64, mtime time.Time) error {
	rel, ok := strings.CutPrefix(key, rs.Prefix)
	if !ok || unsafeKey(rel) != "" {
		rs.Log.Warn("not sent: no name below the route's prefix", "route", rs.Route, "key", key)
		return nil
	}
	switch {
	case rs.Flag == "":
		return rs.admit(ctx, rs.Route, key, rel, size, mtime)
	case rel == rs.Flag:
		return rs.openBatch(ctx, key, size, mtime)
	default:
		return nil // sent with the batch of the next flag
	}
}

// openBatch lists the prefix and records every object but the flag as
// one batch, unless this version of the flag started one before.
func (rs *RouteSource) openBatch(ctx context.Context, flag string, size int64, mtime time.Time) error {
	var objs []storage.Attributes
	err := rs.Store.Walk(ctx, rs.Prefix, func(a storage.Attributes) error {
		if a.Key != flag {
			objs = append(objs, a)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list the batch of %s: %w", flag, err)
	}
	batch := ledger.Batch{Route: rs.Route, Trigger: flag, TriggerVersion: fmt.Sprintf("%d:%d", size, mtime.UnixNano())}
	var sums map[string]string // a release's files' sha256, checked
	if rs.Release {
		var problems []string
		if sums, problems, err = rs.releaseFiles(ctx, flag, objs); err != nil || len(problems) > 0 {
			return cmp.Or(err, rs.refuseRelease(ctx, batch, problems))
		}
	}
	members := make([]ledger.Transfer, 0, len(objs))
	for _, a := range objs {
		rel := strings.TrimPrefix(a.Key, rs.Prefix)
		if why := unsafeKey(rel); why != "" {
			rs.Log.Warn("not sent with its batch", "route", rs.Route, "key", a.Key, "reason", why)
			continue
		}
		t, ok, err := rs.newTransfer(ctx, rs.Route, a.Key, rel, a.Size, time.Unix(a.ModTime, 0))
		if err != nil {
			return err
		}
		if ok && rs.Release {
			// Sent only if still the bytes checked (egress.check).
			t.Direction, t.SHA256 = ledger.Release, sums[a.Key]
		}
		if ok {
			members = append(members, t)
		}
	}
	b, err := rs.Ledger.OpenBatch(ctx, batch, members, rs.Queue.Admit)
	if errors.Is(err, ledger.ErrAdmitted) {
		return nil
	}
	if err != nil {
		return err
	}
	rs.Metrics.exports.WithLabelValues("queued").Add(float64(len(members)))
	rs.Log.Info("batch queued", "batch", b.ID, "route", rs.Route, "flag", flag, "files", b.Files, "reruns", b.Reruns)
	return nil
}
