package main

import (
	"path/filepath"
	"testing"

	"github.com/airlock-gw/airlock/internal/config"
)

// TestRouteLookup: push datasets and route files are routes, pull
// datasets are not; the export area's lookup knows datasets only, so a
// folder there named like a route is never taken for that route's source.
func TestRouteLookup(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{
		"airlock.yaml":    "node: test\n",
		"suppliers/.keep": "",
		"datasets/proj.yaml": "name: proj\npaperwork: \"https://docs.example/dpia\"\nusers: [\"ann\"]\n" +
			"bucket: \"s3://target/proj?region=eu-west-2\"\nkeep_files: true\napproval: 1\n",
		"datasets/shared.yaml": "name: shared\npaperwork: \"https://docs.example/dsa\"\nusers: [\"ann\"]\n" +
			"pull_arns: [\"arn:aws:iam::123456789012:role/reader\"]\n",
		"routes/cbol.yaml": "name: cbol\nsource: \"s3://src/cbol/$TODAYS_DATE/?region=eu-west-2\"\ndestination: \"s3://dest/cbol/$TODAYS_DATE/?region=eu-west-2\"\n",
	})
	cfg, err := config.Load(filepath.Join(dir, "airlock.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	lookup := routesOf(cfg)
	if r, ok := lookup("proj"); !ok || r.Source != cfg.Exports || r.Target != "s3://target/proj?region=eu-west-2" || !r.KeepFiles || r.Approval != 1 {
		t.Errorf("proj: %+v, %v", r, ok)
	}
	if r, ok := lookup("cbol"); !ok || r.Source != "s3://src/cbol?region=eu-west-2" || !r.KeepFiles {
		t.Errorf("cbol: %+v, %v; want the source's bucket prefix, files kept", r, ok)
	}
	if _, ok := lookup("shared"); ok {
		t.Error("a pull dataset is a route")
	}
	exports := routeLookup(cfg.Exports, func() *config.Datasets { return cfg.Datasets }, noRoutes)
	if _, ok := exports("cbol"); ok {
		t.Error("the export area's lookup found a route file")
	}
}
