package audit

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/airlock-gw/airlock/internal/storage"
)

// Chain is what a Checkpointer needs of the ledger.
type Chain interface {
	// Head returns the chain head, made durable.
	Head(ctx context.Context) (seq int64, hash string, err error)
}

// Checkpointer writes a signed checkpoint of the chain head now and then.
type Checkpointer struct {
	Chain   Chain
	Store   *storage.Store
	Key     ed25519.PrivateKey
	Node    string
	Every   time.Duration
	Log     *slog.Logger
	Metrics *Metrics

	last int64 // seq of the last checkpoint this node wrote
}

// Metrics are the checkpointer's Prometheus series.
type Metrics struct {
	seq      prometheus.Gauge
	failures prometheus.Counter
}

// NewMetrics registers the checkpointer's series with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		seq: prometheus.NewGauge(prometheus.GaugeOpts{Name: "airlock_audit_checkpoint_seq",
			Help: "Sequence number of the audit event the latest checkpoint written by this node vouches for."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "airlock_audit_checkpoint_failures_total",
			Help: "Audit checkpoints that could not be written (retried at the next interval)."}),
	}
	reg.MustRegister(m.seq, m.failures)
	return m
}

// Run writes a checkpoint at once and then every c.Every until ctx ends. A
// checkpoint that cannot be written is logged and counted, and the next
// tick tries again: the gateway goes on without it.
func (c *Checkpointer) Run(ctx context.Context) error {
	tick := time.NewTicker(c.Every)
	defer tick.Stop()
	for {
		_ = c.Checkpoint(ctx) // logged there
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Checkpoint writes a checkpoint of the chain head, unless the head is
// where this node's last checkpoint left it or there is no event yet.
func (c *Checkpointer) Checkpoint(ctx context.Context) error {
	seq, hash, err := c.Chain.Head(ctx)
	if err == nil && (seq == 0 || seq == c.last) {
		return nil
	}
	var cp Checkpoint
	wrote := false
	if err == nil {
		cp = Sign(c.Key, c.Node, seq, hash, time.Now())
		wrote, err = Put(ctx, c.Store, cp)
	}
	if err != nil {
		if ctx.Err() == nil {
			c.Log.Error("audit checkpoint not written; trying again at the next interval", "err", err)
			c.Metrics.failures.Inc()
		}
		return err
	}
	c.last = seq
	c.Metrics.seq.Set(float64(seq))
	if wrote {
		c.Log.Info("audit checkpoint written", "seq", seq, "checkpoint", cp.Name(), "store", c.Store.String())
	}
	return nil
}
