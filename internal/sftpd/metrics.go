package sftpd

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the SFTP server's Prometheus collectors.
type Metrics struct {
	connections        prometheus.Counter
	connectionsRefused *prometheus.CounterVec
	bans               prometheus.Counter
	banWrites          prometheus.Counter
	banStoreErrors     prometheus.Counter
	memoryWaits        prometheus.Counter
	sessions           prometheus.Gauge
	uploadBytes        prometheus.Counter
	downloadBytes      prometheus.Counter
	uploads            *prometheus.CounterVec
	downloads          *prometheus.CounterVec
	authFailures       *prometheus.CounterVec
	refused            *prometheus.CounterVec
	revoked            *prometheus.CounterVec
	limitRefusals      *prometheus.CounterVec
	openHandles        prometheus.Gauge
	acceptErrors       prometheus.Counter
	draining           prometheus.Gauge
	drainClosed        prometheus.Counter
}

// NewMetrics registers the collectors with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		connections: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_sftp_connections_total", Help: "TCP connections accepted on the SFTP port.",
		}),
		connectionsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_sftp_connections_refused_total", Help: "Connections dropped before login by reason (banned, caps, handshake timeout, PROXY protocol header).",
		}, []string{"reason"}),
		bans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_sftp_bans_total", Help: "Addresses banned for too many failed logins or slots held without logging in.",
		}),
		banWrites: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_sftp_ban_writes_total", Help: "Batches of failed logins written to the ban store shared by all nodes (at most one per 250 ms).",
		}),
		banStoreErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_sftp_ban_store_errors_total", Help: "Failed writes of failed logins to, or reads of bans from, the ban store; retried.",
		}),
		memoryWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_sftp_upload_memory_waits_total", Help: "Uploads that waited for the upload memory budget (limits.upload_memory).",
		}),
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "airlock_sftp_sessions", Help: "Authenticated SFTP connections open now.",
		}),
		uploadBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_sftp_upload_bytes_total", Help: "Bytes received in uploads.",
		}),
		downloadBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_sftp_download_bytes_total", Help: "Bytes sent in downloads.",
		}),
		uploads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_sftp_uploads_total", Help: "Finished uploads by outcome (received, failed).",
		}, []string{"outcome"}),
		downloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_sftp_downloads_total", Help: "Closed downloads by outcome (complete, partial).",
		}, []string{"outcome"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_sftp_auth_failures_total", Help: "Refused logins by reason.",
		}, []string{"reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_sftp_requests_refused_total", Help: "Refused SFTP requests by reason.",
		}, []string{"reason"}),
		revoked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_sftp_sessions_revoked_total", Help: "Live sessions closed because a reload or key expiry no longer allows them, by reason.",
		}, []string{"reason"}),
		limitRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_sftp_limit_refusals_total", Help: "Opens, channels and connections refused or closed by a resource limit (handles_per_session, handles_per_supplier, handles_per_node, channels_per_connection, write_stall_timeout).",
		}, []string{"limit"}),
		openHandles: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "airlock_sftp_open_handles", Help: "File and directory handles open now on this node.",
		}),
		acceptErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_sftp_accept_errors_total", Help: "Failed accepts on the SFTP port (such as running out of file descriptors); each is retried after a backoff.",
		}),
		draining: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "airlock_sftp_draining", Help: "1 while the node drains after SIGTERM: new connections are refused, open sessions run on for sftp.drain_timeout.",
		}),
		drainClosed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_sftp_drain_closed_total", Help: "Sessions still open when sftp.drain_timeout ran out, closed by the drain.",
		}),
	}
	reg.MustRegister(m.connections, m.connectionsRefused, m.bans, m.banWrites, m.banStoreErrors, m.memoryWaits, m.sessions, m.uploadBytes, m.downloadBytes, m.uploads, m.downloads, m.authFailures, m.refused,
		m.revoked, m.limitRefusals, m.openHandles, m.acceptErrors, m.draining, m.drainClosed)
	return m
}
