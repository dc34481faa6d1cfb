package pipeline

import (
	"path/filepath"
	"testing"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
)

// BenchmarkAdmit is the job queue's share of an upload's close on
// SQLite: queueing its ingest job in a transaction of its own, as the
// sftp server does in the one recording the upload as received.
func BenchmarkAdmit(b *testing.B) {
	ctx := b.Context()
	led, err := ledger.Open(ctx, "sqlite:"+filepath.Join(b.TempDir(), "airlock.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { led.Close() })
	q, err := Open(ctx, led, "bench", config.Pipeline{Workers: 2, MaxAttempts: 20}, nil, testLogger(b))
	if err != nil {
		b.Fatal(err)
	}
	tr := ledger.Transfer{ID: "06h1d5ndu9uupn0imisuf79204"}
	for b.Loop() {
		tx, err := led.DB().BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := q.Admit(ctx, tx, tr); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}
