package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestServeRefusesLocalStoresWithPostgres: serve checks the tree as
// validate does, and refuses to start a node whose landing other nodes
// could not read, before it opens anything.
func TestServeRefusesLocalStoresWithPostgres(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{
		"airlock.yaml":    "node: n\ndatabase: postgres://airlock@db.invalid/airlock\nlanding: /srv/landing\nquarantine: s3://q\n",
		"suppliers/.keep": "",
	})
	cfg := filepath.Join(dir, "airlock.yaml")
	want := cfg + `:3: landing: "/srv/landing" is on this node's disk`
	for _, cmd := range []string{"validate", "serve"} {
		_, stderr, err := run(t, cmd, "--config", cfg)
		if err == nil {
			t.Fatalf("%s accepted a local landing with a postgres database", cmd)
		}
		if got := stderr + err.Error(); !strings.Contains(got, want) {
			t.Errorf("%s: %s\nwant it to say %s", cmd, got, want)
		}
	}
}
