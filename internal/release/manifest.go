package release

import (
	"cmp"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Manifest is airlock-manifest.json, written after every file of the
// release is complete: its presence tells a watcher the release is whole.
type Manifest struct {
	Release string          `json:"release"` // random, one per run that writes a manifest
	Who     string          `json:"who"`     // the caller's ARN, or the OS user
	When    time.Time       `json:"when"`
	Bucket  string          `json:"bucket"`
	Prefix  string          `json:"prefix"` // the files' keys are relative to it
	Files   []ManifestEntry `json:"files"`
}

// ManifestEntry is one file: its key below the prefix, size and sha256.
type ManifestEntry struct {
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// NewReleaseID is a release's id: 128 random bits, in base32.
func NewReleaseID() string { return rand.Text() }

func newManifest(id, who string, when time.Time, t Target, files []ManifestEntry) Manifest {
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b ManifestEntry) int { return cmp.Compare(a.Key, b.Key) })
	return Manifest{Release: id, Who: who, When: when.UTC(), Bucket: t.Bucket, Prefix: t.Prefix, Files: files}
}

// sameFiles reports whether a manifest already at the target lists
// exactly these files: a run that sent nothing then writes no new one, so
// a watcher does not take a repeated run for a new release.
func sameFiles(old []byte, m Manifest) bool {
	var prev Manifest
	if err := json.Unmarshal(old, &prev); err != nil {
		return false
	}
	return prev.Bucket == m.Bucket && prev.Prefix == m.Prefix && slices.Equal(prev.Files, m.Files)
}

func (m Manifest) encode() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return append(b, '\n'), nil
}
