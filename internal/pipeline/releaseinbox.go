package pipeline

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/notify"
	"github.com/airlock-gw/airlock/internal/scan"
	"github.com/airlock-gw/airlock/internal/storage"
)

// releaseManifest is the part of airlock-manifest.json (written last by
// `airlock release`) that a release inbox checks a batch against.
type releaseManifest struct {
	Release string `json:"release"`
	Who     string `json:"who"`
	Files   []struct {
		Key    string `json:"key"` // below the release's prefix: the inbox's
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
	} `json:"files"`
}

// maxReleaseManifest bounds the manifest read: a million files' entries.
const maxReleaseManifest = 256 << 20

// releaseFiles checks the objects under a release inbox's prefix (all but
// the manifest at flag) against the manifest: exactly its files, each of
// its size and sha256, each scanned clean. It returns each file's sha256
// by key, and what does not match; an error is one a later poll may not
// meet (a store or scanner out of reach).
func (rs *RouteSource) releaseFiles(ctx context.Context, flag string, objs []storage.Attributes) (map[string]string, []string, error) {
	m, err := rs.readManifest(ctx, flag)
	if err != nil {
		return nil, []string{fmt.Sprintf("%s: %v", flag, err)}, nil
	}
	want := make(map[string]int64, len(m.Files))
	sums := make(map[string]string, len(m.Files))
	for _, f := range m.Files {
		want[rs.Prefix+f.Key], sums[rs.Prefix+f.Key] = f.Size, strings.ToLower(f.SHA256)
	}
	var problems []string
	for _, a := range objs {
		size, named := want[a.Key]
		delete(want, a.Key)
		switch {
		case !named:
			problems = append(problems, a.Key+" is not in the manifest")
			continue
		case size != a.Size:
			problems = append(problems, fmt.Sprintf("%s is %d bytes, the manifest says %d", a.Key, a.Size, size))
			continue
		}
		problem, err := rs.checkReleased(ctx, a.Key, sums[a.Key])
		if err != nil {
			return nil, nil, err
		}
		if problem != "" {
			problems = append(problems, problem)
		}
	}
	for key := range want {
		problems = append(problems, key+" is in the manifest but not in the inbox")
	}
	return sums, problems, nil
}

func (rs *RouteSource) readManifest(ctx context.Context, key string) (releaseManifest, error) {
	r, err := rs.Store.NewRangeReader(ctx, key, 0, -1)
	if err != nil {
		return releaseManifest{}, err
	}
	defer r.Close()
	var m releaseManifest
	dec := json.NewDecoder(io.LimitReader(r, maxReleaseManifest))
	if err := dec.Decode(&m); err != nil {
		return releaseManifest{}, fmt.Errorf("not a release manifest: %w", err)
	}
	if m.Release == "" {
		return releaseManifest{}, errors.New("not a release manifest: no release id")
	}
	return m, nil
}

// checkReleased hashes and scans the object at key in one read, and says
// what is wrong with it, if anything.
func (rs *RouteSource) checkReleased(ctx context.Context, key, sha string) (string, error) {
	r, err := rs.Store.NewRangeReader(ctx, key, 0, -1)
	if errors.Is(err, storage.ErrNotFound) {
		return key + " went from the inbox while it was checked", nil
	}
	if err != nil {
		return "", fmt.Errorf("check %s: %w", key, err)
	}
	defer r.Close()
	h := sha256.New()
	body := io.TeeReader(r, h)
	res, err := rs.Scanner.Scan(ctx, body)
	if err != nil {
		return "", fmt.Errorf("scan %s: %w", key, err)
	}
	if _, err := io.Copy(h, r); err != nil { // what the scanner left unread
		return "", fmt.Errorf("check %s: %w", key, err)
	}
	switch got := hex.EncodeToString(h.Sum(nil)); {
	case res.Verdict == scan.Infected:
		return fmt.Sprintf("%s is infected (%s)", key, res.Signature), nil
	case res.Verdict != scan.Clean:
		return fmt.Sprintf("%s could not be scanned: %s", key, res.Verdict), nil
	case got != sha:
		return fmt.Sprintf("%s has sha256 %s, the manifest says %s", key, got, sha), nil
	}
	return "", nil
}

// refuseRelease records a release whose files do not match its manifest
// as a failed batch of no files, told of as batch.failed: nothing of it
// is sent.
func (rs *RouteSource) refuseRelease(ctx context.Context, b ledger.Batch, problems []string) error {
	const shown = 20
	why := strings.Join(problems[:min(len(problems), shown)], "; ")
	if len(problems) > shown {
		why += fmt.Sprintf("; and %d more", len(problems)-shown)
	}
	b, err := rs.Ledger.RefuseBatch(ctx, b, "the release does not match its manifest: "+why, func(ctx context.Context, tx *sql.Tx, b ledger.Batch) error {
		return insert(ctx, rs.Queue.client, tx, batchNotifyArgs{BatchID: b.ID, Event: notify.EventBatchFailed})
	})
	if errors.Is(err, ledger.ErrAdmitted) {
		return nil
	}
	if err != nil {
		return err
	}
	rs.Log.Warn("release refused: it does not match its manifest", "batch", b.ID, "route", rs.Route, "manifest", b.Trigger,
		"problems", len(problems), "first", problems[0])
	return nil
}
