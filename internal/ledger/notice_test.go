package ledger

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/airlock-gw/airlock/internal/ledger/ledgertest"
)

func TestRecordNotice(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		l := openLedger(t, dsn)
		const id = "key-expiry:acme:SHA256:abc:2027-03-31"
		ev := Event{Kind: "key.expiry_notice", Detail: map[string]string{"supplier": "acme"}}

		if sent, err := l.NoticeSent(ctx, id); err != nil || sent {
			t.Fatalf("NoticeSent before = %v, %v", sent, err)
		}
		first, err := l.RecordNotice(ctx, id, ev)
		if err != nil || !first {
			t.Fatalf("RecordNotice = %v, %v; want true", first, err)
		}
		if sent, err := l.NoticeSent(ctx, id); err != nil || !sent {
			t.Errorf("NoticeSent after = %v, %v", sent, err)
		}
		// Again: not first, and the audit chain is untouched.
		first, err = l.RecordNotice(ctx, id, ev)
		if err != nil || first {
			t.Errorf("RecordNotice again = %v, %v; want false", first, err)
		}
		if first, err := l.RecordNotice(ctx, id+"x", Event{}); err == nil || first {
			t.Errorf("RecordNotice without a kind = %v, %v; want an error", first, err)
		}
		if sent, _ := l.NoticeSent(ctx, id+"x"); sent {
			t.Error("a failed RecordNotice left its notice behind")
		}
		if _, err := l.RecordNotice(ctx, "", ev); err == nil {
			t.Error("RecordNotice without an id succeeded")
		}

		evs, err := l.Events(ctx, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || evs[0].Kind != "key.expiry_notice" || evs[0].Actor != "system" || evs[0].Detail["supplier"] != "acme" {
			t.Errorf("audit events %+v, want the one notice", evs)
		}
		// The next append continues the chain where the notice left it.
		if _, err := l.Append(ctx, Event{Kind: "connect"}); err != nil {
			t.Fatal(err)
		}
		checkChain(t, l, 2, 0)
	})
}

// TestRecordNoticeConcurrently: nodes racing to record one notice agree
// on a single first, with a single audit event.
func TestRecordNoticeConcurrently(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		ls := [2]*Ledger{openLedger(t, dsn), openLedger(t, dsn)}
		var firsts atomic.Int32
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := range 5 {
					id := "notice-" + string(rune('a'+i))
					first, err := ls[w%2].RecordNotice(ctx, id, Event{Kind: "key.expiry_notice"})
					if err != nil {
						t.Errorf("worker %d: %v", w, err)
					}
					if first {
						firsts.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if n := firsts.Load(); n != 5 {
			t.Errorf("%d firsts, want 5 (one per notice)", n)
		}
		checkChain(t, ls[0], 5, 0)
	})
}
