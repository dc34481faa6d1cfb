package ledger

import (
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger/ledgertest"
)

func TestNodeHeartbeats(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		l := openLedger(t, dsn)
		before := now()
		for _, node := range []string{"a", "b", "a"} { // a twice: one row, the later time
			if err := l.Heartbeat(ctx, node); err != nil {
				t.Fatal(err)
			}
		}
		seen, err := l.NodesSeen(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) != 2 || seen["a"].Before(seen["b"]) || seen["b"].Before(before) || time.Since(seen["a"]) > time.Minute {
			t.Fatalf("NodesSeen = %v, want a and b, a last, both since %v", seen, before)
		}
		if _, err := l.DB().ExecContext(ctx, `UPDATE nodes SET seen_at = '2020-01-01T00:00:00.000000Z' WHERE name = 'b'`); err != nil {
			t.Fatal(err)
		}
		if n, err := l.ForgetNodes(ctx, before); err != nil || n != 1 {
			t.Fatalf("ForgetNodes = %d, %v; want 1", n, err)
		}
		if seen, err := l.NodesSeen(ctx); err != nil || len(seen) != 1 || seen["a"].IsZero() {
			t.Errorf("after ForgetNodes: %v, %v; want a alone", seen, err)
		}
	})
}
