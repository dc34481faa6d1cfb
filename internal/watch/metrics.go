package watch

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the Prometheus collectors of every Poller and Webhook given
// them.
type Metrics struct {
	polls      *prometheus.CounterVec
	pollErrors prometheus.Counter
	handedOver *prometheus.CounterVec
	watched    prometheus.Gauge
	events     *prometheus.CounterVec
}

// NewMetrics registers the collectors with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_watch_polls_total", Help: "Listings of a watched prefix, by trigger (timer, kick: a bucket notification).",
		}, []string{"trigger"}),
		pollErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_watch_poll_errors_total", Help: "Listings of a watched prefix that failed (the next poll tries again).",
		}),
		handedOver: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_watch_objects_found_total", Help: "Complete new objects (or new versions) found in a watched prefix and handed over, by result (ok, failed: offered again at the next poll).",
		}, []string{"result"}),
		watched: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "airlock_watch_objects", Help: "Objects seen in the watched prefixes at the last poll.",
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_watch_notifications_total", Help: "Bucket notifications received, by result (accepted, unauthorized, invalid).",
		}, []string{"result"}),
	}
	reg.MustRegister(m.polls, m.pollErrors, m.handedOver, m.watched, m.events)
	return m
}

// The methods do nothing on a nil *Metrics.

func (m *Metrics) poll(trigger string) {
	if m != nil {
		m.polls.WithLabelValues(trigger).Inc()
	}
}

func (m *Metrics) pollFailed() {
	if m != nil {
		m.pollErrors.Inc()
	}
}

func (m *Metrics) handOver(ok bool) {
	if m == nil {
		return
	}
	result := "ok"
	if !ok {
		result = "failed"
	}
	m.handedOver.WithLabelValues(result).Inc()
}

// watching adds delta objects to those watched: a gauge shared by pollers.
func (m *Metrics) watching(delta int) {
	if m != nil {
		m.watched.Add(float64(delta))
	}
}

func (m *Metrics) event(result string) {
	if m != nil {
		m.events.WithLabelValues(result).Inc()
	}
}
