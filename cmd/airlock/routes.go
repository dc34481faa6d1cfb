package main

import (
	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/pipeline"
)

// datasetRoutes is the pipeline's route lookup over the datasets current
// returns: a push dataset is a route from its prefix of the export area to
// its bucket. A pull dataset is no route: nothing is sent to it.
func datasetRoutes(exports string, current func() *config.Datasets) func(string) (pipeline.Route, bool) {
	return func(name string) (pipeline.Route, bool) {
		d, ok := current().Lookup(name)
		if !ok || !d.Push() {
			return pipeline.Route{}, false
		}
		return pipeline.Route{Source: exports, Target: d.Bucket.URL, KMSKey: d.Bucket.KMSKey,
			KeepFiles: d.KeepFiles, Approval: d.Approval}, true
	}
}

// routesOf is the route lookup over cfg's datasets as loaded.
func routesOf(cfg *config.Config) func(string) (pipeline.Route, bool) {
	return datasetRoutes(cfg.Exports, func() *config.Datasets { return cfg.Datasets })
}

// pullRetention lists the pull datasets current returns that delete what
// they keep past a retention.
func pullRetention(current func() *config.Datasets) func() []pipeline.Retention {
	return func() []pipeline.Retention {
		var rs []pipeline.Retention
		for _, d := range current().All() {
			if !d.Push() && d.Retention > 0 {
				rs = append(rs, pipeline.Retention{Dataset: d.Name, Location: d.PullBucket, Keep: d.Retention})
			}
		}
		return rs
	}
}
