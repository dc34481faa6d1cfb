package release

import (
	"encoding/json"
	"testing"
	"time"
)

func TestManifest(t *testing.T) {
	t.Parallel()
	target := Target{Bucket: "inbox", Prefix: "team/r1/"}
	when := time.Date(2026, 12, 8, 1, 2, 3, 0, time.FixedZone("x", 3600))
	files := []ManifestEntry{{Key: "sub/b.csv", Size: 2, SHA256: "bb"}, {Key: "a.csv", Size: 1, SHA256: "aa"}}
	m := newManifest("ID1", "arn:aws:sts::111122223333:assumed-role/r/s", when, target, files)
	b, err := m.encode()
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got["release"] != "ID1" || got["who"] != "arn:aws:sts::111122223333:assumed-role/r/s" ||
		got["when"] != "2026-12-08T00:02:03Z" || got["bucket"] != "inbox" || got["prefix"] != "team/r1/" {
		t.Errorf("manifest = %s", b)
	}
	fs := got["files"].([]any)
	if first := fs[0].(map[string]any); first["key"] != "a.csv" || first["size"] != 1.0 || first["sha256"] != "aa" {
		t.Errorf("files not sorted by key, or fields wrong: %s", b)
	}

	tests := []struct {
		name  string
		other Manifest
		same  bool
	}{
		{"another run of the same files", newManifest("ID2", "someone", when.Add(time.Hour), target, files[1:2:2]), false},
		{"the same files, another id", newManifest("ID2", "someone", when.Add(time.Hour), target, files), true},
		{"another prefix", newManifest("ID2", "x", when, Target{Bucket: "inbox", Prefix: "team/r2/"}, files), false},
		{"a file changed", newManifest("ID2", "x", when, target, []ManifestEntry{files[0], {Key: "a.csv", Size: 1, SHA256: "ab"}}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := sameFiles(b, tt.other); got != tt.same {
				t.Errorf("sameFiles = %v, want %v", got, tt.same)
			}
		})
	}
	if sameFiles([]byte("not json"), m) {
		t.Error("a manifest that does not parse is taken as the same")
	}
	if a, b := NewReleaseID(), NewReleaseID(); a == b || len(a) < 26 {
		t.Errorf("release ids %q, %q: want random, 128 bits", a, b)
	}
}
