package ledger

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger/ledgertest"
)

func TestAppendAndEvents(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		l := openLedger(t, dsn)
		if _, err := l.Append(ctx, Event{Actor: "x"}); err == nil {
			t.Error("Append without a kind succeeded")
		}
		var appended []Event
		for i := range 3 {
			ev, err := l.Append(ctx, Event{Kind: "auth.fail", RemoteIP: "198.51.100.1",
				Detail: map[string]string{"n": strconv.Itoa(i), "<&>": "\"quoted\"\n"}})
			if err != nil {
				t.Fatal(err)
			}
			appended = append(appended, ev)
		}
		if appended[0].Seq != 1 || appended[0].PrevHash != "" || appended[1].PrevHash != appended[0].Hash ||
			appended[2].Actor != "system" || len(appended[2].Hash) != 64 {
			t.Errorf("appended = %+v", appended)
		}
		got, err := l.Events(ctx, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(appended) {
			t.Errorf("Events = %+v\nwant %+v", got, appended)
		}
		if got, err := l.Events(ctx, "", 2); err != nil || len(got) != 2 || got[1].Seq != 2 {
			t.Errorf("Events(limit 2) = %+v, %v", got, err)
		}
		if got, err := l.Events(ctx, "none", 0); err != nil || len(got) != 0 {
			t.Errorf("Events(unknown transfer) = %+v, %v", got, err)
		}
	})
}

func TestVerifyAudit(t *testing.T) {
	t.Parallel()
	const events = 5
	tests := []struct {
		name    string
		tamper  []string // SQL run after the chain is written
		wantSeq int64    // 0: the chain must verify
	}{
		{"intact", nil, 0},
		{"edited detail", []string{`UPDATE audit_events SET detail = '{"k":"forged"}' WHERE seq = 3`}, 3},
		{"edited kind", []string{`UPDATE audit_events SET kind = 'auth.ok' WHERE seq = 3`}, 3},
		{"edited time", []string{`UPDATE audit_events SET at = '2000-01-01T00:00:00.000000Z' WHERE seq = 4`}, 4},
		{"deleted middle row", []string{`DELETE FROM audit_events WHERE seq = 3`}, 3},
		{"deleted first row", []string{`DELETE FROM audit_events WHERE seq = 1`}, 1},
		{"deleted last row", []string{`DELETE FROM audit_events WHERE seq = 5`}, 5},
		{"deleted last two rows", []string{`DELETE FROM audit_events WHERE seq >= 4`}, 4},
		{"deleted all rows", []string{`DELETE FROM audit_events`}, 1},
		{"edited hash", []string{`UPDATE audit_events SET hash = 'ff' WHERE seq = 2`}, 2},
		{"edited last hash", []string{`UPDATE audit_events SET hash = 'ff' WHERE seq = 5`}, 5},
		{"renumbered to close a gap", []string{
			`DELETE FROM audit_events WHERE seq = 3`,
			`UPDATE audit_events SET seq = 3 WHERE seq = 4`,
		}, 3},
		{"edited head", []string{`UPDATE audit_head SET hash = 'ff' WHERE id = 1`}, 5},
		{"inserted beyond the head", []string{`INSERT INTO audit_events (` + eventColumns + `)
			SELECT seq + 1, at, kind, actor, remote_ip, conn_id, transfer_id, detail, hash, hash FROM audit_events WHERE seq = 5`}, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
				ctx := t.Context()
				l := openLedger(t, dsn)
				for i := range events {
					if _, err := l.Append(ctx, Event{Kind: "connect", Actor: "acme",
						Detail: map[string]string{"k": strconv.Itoa(i)}}); err != nil {
						t.Fatal(err)
					}
				}
				for _, q := range tt.tamper {
					if _, err := l.DB().ExecContext(ctx, q); err != nil {
						t.Fatalf("%s: %v", q, err)
					}
				}
				checkChain(t, l, events, tt.wantSeq)
			})
		})
	}

	// Editing a row and recomputing its hash moves the break to the next row.
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		l := openLedger(t, dsn)
		for range events {
			if _, err := l.Append(ctx, Event{Kind: "connect"}); err != nil {
				t.Fatal(err)
			}
		}
		rows, err := l.eventRows(ctx, `SELECT `+eventColumns+` FROM audit_events WHERE seq = $1`, 2)
		if err != nil || len(rows) != 1 {
			t.Fatalf("read row 2: %v", err)
		}
		r := rows[0]
		r.Actor = "someone else"
		if _, err := l.DB().ExecContext(ctx, `UPDATE audit_events SET actor = $1, hash = $2 WHERE seq = 2`,
			r.Actor, r.chainHash()); err != nil {
			t.Fatal(err)
		}
		checkChain(t, l, events, 3)
	})
}

// checkChain verifies the audit chain of l, which has total events, and
// expects it intact (wantSeq 0) or broken at wantSeq. It also verifies in
// batches of two, so that every case crosses batch boundaries.
func checkChain(t *testing.T, l *Ledger, total, wantSeq int64) {
	t.Helper()
	for _, batch := range []int{1000, 2} {
		v, err := l.verifyAudit(t.Context(), batch, nil)
		if err != nil {
			t.Fatalf("batch %d: VerifyAudit: %v", batch, err)
		}
		if wantSeq == 0 {
			if !v.Intact() || v.Events != total {
				t.Errorf("batch %d: VerifyAudit = %+v; want %d events, intact", batch, v, total)
			}
			continue
		}
		if !v.Broken || len(v.Problems) != 1 {
			t.Fatalf("batch %d: VerifyAudit = %+v; want one problem, the chain broken", batch, v)
		}
		if p := v.Problems[0]; p.Seq != wantSeq {
			t.Errorf("batch %d: broken at seq %d (%v), want seq %d", batch, p.Seq, p, wantSeq)
		}
		if v.Events != wantSeq-1 {
			t.Errorf("batch %d: VerifyAudit counted %d good events, want %d", batch, v.Events, wantSeq-1)
		}
	}
}

func TestConcurrentWriters(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		const workers, ops = 16, 50
		ctx := t.Context()
		// Two ledgers on one database stand for two processes or nodes;
		// opening them together also races their migrations.
		var ls [2]*Ledger
		var wg sync.WaitGroup
		errs := make(chan error, workers*ops)
		for i := range ls {
			wg.Go(func() {
				var err error
				if ls[i], err = Open(ctx, dsn); err != nil {
					errs <- err
					return
				}
				t.Cleanup(func() { ls[i].Close() })
			})
		}
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("concurrent Open: %v", <-errs)
		}
		l := ls[0]
		var writers sync.WaitGroup
		for w := range workers {
			writers.Go(func() {
				var id string
				for i := range ops {
					if err := concurrentOp(ctx, ls[w%2], w, i, &id); err != nil {
						errs <- fmt.Errorf("worker %d op %d: %w", w, i, err)
					}
				}
			})
		}
		// Verifying while the chain grows must not report appends in flight.
		done := make(chan struct{})
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				case <-time.After(10 * time.Millisecond):
				}
				if _, err := ls[1].VerifyAudit(ctx); err != nil {
					errs <- fmt.Errorf("VerifyAudit during writes: %w", err)
					return
				}
			}
		})
		writers.Wait()
		close(done)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		checkChain(t, l, workers*ops, 0)
		ts, err := l.List(ctx, Filter{})
		if err != nil || len(ts) != workers*((ops+2)/3) {
			t.Errorf("List = %d transfers, %v; want %d", len(ts), err, workers*((ops+2)/3))
		}
	})
}

// concurrentOp is op i of a worker: Begin a transfer, then Advance it, then
// Append an event, and again. Each appends one audit event.
func concurrentOp(ctx context.Context, l *Ledger, worker, i int, id *string) error {
	switch i % 3 {
	case 0:
		tr, err := l.Begin(ctx, NewTransfer(Transfer{Supplier: "s" + strconv.Itoa(worker), Path: "/f" + strconv.Itoa(i)}), Event{})
		*id = tr.ID
		return err
	case 1:
		_, err := l.Advance(ctx, *id, []State{Receiving}, Received, Change{Size: ptr(int64(i))}, Event{Kind: "upload.finish"})
		return err
	default:
		_, err := l.Append(ctx, Event{Kind: "connect", ConnID: strconv.Itoa(worker)})
		return err
	}
}
