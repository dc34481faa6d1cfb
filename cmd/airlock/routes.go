package main

import (
	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/pipeline"
)

// routeLookup is the pipeline's route lookup: a push dataset (of the
// datasets current returns) is a route from its prefix of the export area
// to its bucket; a route file (of the set routes returns), from its source
// to its destination, which keeps its files, through what the node opened
// for it. A pull dataset is no route: nothing is sent to it.
func routeLookup(exports string, current func() *config.Datasets, routes func() *routeSet) func(string) (pipeline.Route, bool) {
	return func(name string) (pipeline.Route, bool) {
		if d, ok := current().Lookup(name); ok {
			if !d.Push() {
				return pipeline.Route{}, false
			}
			return pipeline.Route{Source: exports, Target: d.Bucket.URL, KMSKey: d.Bucket.KMSKey,
				KeepFiles: d.KeepFiles, Approval: d.Approval}, true
		}
		e, ok := routes().entry(name)
		if !ok {
			return pipeline.Route{}, false
		}
		r, s := e.route, e.send
		source, _ := r.Watch("")
		return pipeline.Route{Source: source, Target: r.Destination, KMSKey: r.KMSKey, KeepFiles: true, Approval: r.Approval,
			Transform: s.transform, Receiver: s.receiver, ReceiverPrefix: s.receiverPrefix,
			Notify: r.Notify, Recipient: r.Recipient}, true
	}
}

// routesOf is the route lookup over cfg's datasets and routes as loaded,
// for the commands that send nothing.
func routesOf(cfg *config.Config) func(string) (pipeline.Route, bool) {
	set := &routeSet{entries: map[string]*routeEntry{}}
	for _, r := range cfg.Routes.All() {
		set.entries[r.Name] = &routeEntry{route: r}
	}
	return routeLookup(cfg.Exports, func() *config.Datasets { return cfg.Datasets }, func() *routeSet { return set })
}

// noRoutes is the route set of the export area's lookup: datasets only.
func noRoutes() *routeSet { return &routeSet{} }

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
