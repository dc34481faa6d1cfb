package pipeline

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the pipeline's Prometheus collectors.
type Metrics struct {
	scans      *prometheus.CounterVec
	outcomes   *prometheus.CounterVec
	retries    *prometheus.CounterVec
	latency    prometheus.Histogram
	queueDepth prometheus.Gauge
	overwrites *prometheus.CounterVec
	takeovers  prometheus.Counter
	exports    *prometheus.CounterVec
	// Per route (dataset or route file): bounded by the configuration.
	routeFiles   *prometheus.CounterVec
	routeBytes   *prometheus.CounterVec
	batchLatency *prometheus.HistogramVec
	batches      *prometheus.CounterVec
}

// NewMetrics registers the collectors with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		scans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_scan_results_total", Help: "Files scanned, by verdict (clean, infected, too-large-to-scan).",
		}, []string{"verdict"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_transfer_outcomes_total", Help: "Transfers settled, by outcome (delivered, quarantined, rejected, failed).",
		}, []string{"outcome"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_job_retries_total", Help: "Job attempts that failed and will be retried, by job kind (ingest, egress, notify).",
		}, []string{"kind"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "airlock_delivery_latency_seconds",
			Help:    "Time from a file landing (upload complete) to its delivery, retries included.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200},
		}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "airlock_job_queue_depth", Help: "Jobs waiting, scheduled for a retry or running (counted up to 10000).",
		}),
		overwrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_delivery_overwrites_total",
			Help: "Deliveries to a name another transfer delivered before, by the supplier's overwrite policy (allow: replaced, version: set beside, deny: failed).",
		}, []string{"policy"}),
		takeovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_jobs_taken_over_total",
			Help: "Jobs of a node silent for pipeline.rescue_after that this node made available again.",
		}),
		exports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_export_objects_total",
			Help: "Objects found in the export area, by what became of them (queued: a transfer of its dataset; unrouted: under no push dataset, never sent).",
		}, []string{"result"}),
		routeFiles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_route_files_total", Help: "Files a dataset or route settled, by route and outcome (delivered, failed).",
		}, []string{"route", "outcome"}),
		routeBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_route_bytes_total", Help: "Bytes a dataset or route delivered (as read from its source), by route.",
		}, []string{"route"}),
		batchLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "airlock_batch_latency_seconds",
			Help:    "Time from a flag starting a batch to the batch's manifest sent, by route.",
			Buckets: []float64{1, 5, 15, 60, 300, 900, 3600, 14400, 86400},
		}, []string{"route"}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_route_batches_total", Help: "Batches a route settled, by route and outcome (delivered, failed).",
		}, []string{"route", "outcome"}),
	}
	reg.MustRegister(m.scans, m.outcomes, m.retries, m.latency, m.queueDepth, m.overwrites, m.takeovers, m.exports,
		m.routeFiles, m.routeBytes, m.batchLatency, m.batches)
	return m
}
