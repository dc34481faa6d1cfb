package ledger

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger/ledgertest"
)

// digestOf is the row digest an event about t holds.
func digestOf(t Transfer) string {
	return rowDigest(t, formatTime(t.CreatedAt), formatTime(t.UpdatedAt), storedTime(t.MTime), storedTime(t.HiddenAt))
}

// withoutRow is d without its row digest.
func withoutRow(d map[string]string) map[string]string {
	d = maps.Clone(d)
	delete(d, RowKey)
	return d
}

// TestRowDigest pins the encoding docs/security.md describes: a digest
// computed outside airlock, from the columns as text, must match.
func TestRowDigest(t *testing.T) {
	t.Parallel()
	tr := Transfer{ID: "a", Direction: "ingress", Supplier: "acme", Path: "/x", Size: 68, SHA256: "s", State: "delivered",
		ScanResult: "clean", Destination: "d", Attempts: 3, LandingKey: "k", Node: "vm", RemoteIP: "127.0.0.1"}
	const want = "v1:b7d8849fcd762654677d0de753232a7ed5b4b090574a1dc108dc11a4c0e6b54b"
	if got := rowDigest(tr, "c", "u", nil, nil); got != want {
		t.Errorf("rowDigest = %s, want %s", got, want)
	}
}

// tamperFixture is a ledger with a delivered transfer, a quarantined one
// and one still receiving, as the gateway records them.
type tamperFixture struct {
	l                                 *Ledger
	delivered, quarantined, receiving Transfer
}

func newTamperFixture(t *testing.T, dsn string) tamperFixture {
	t.Helper()
	ctx := t.Context()
	f := tamperFixture{l: openLedger(t, dsn)}
	settle := func(path, sha string, outcome State, scan string) Transfer {
		t.Helper()
		tr, err := f.l.Record(ctx, NewTransfer(Transfer{Supplier: "acme", Path: path, Node: "n1"}), Event{},
			Received, Change{Size: ptr(int64(68)), SHA256: &sha}, Event{Kind: "upload.finish",
				Detail: map[string]string{"size": "68", "sha256": sha}})
		if err != nil {
			t.Fatal(err)
		}
		for _, step := range []struct {
			to State
			ch Change
		}{
			{Scanning, Change{}},
			{outcome, Change{ScanResult: &scan, Destination: ptr("/dest" + path)}},
		} {
			if tr, err = f.l.Advance(ctx, tr.ID, []State{tr.State}, step.to, step.ch, Event{}); err != nil {
				t.Fatal(err)
			}
		}
		return tr
	}
	f.delivered = settle("/data.csv", strings.Repeat("a", 64), Delivered, "clean")
	// The supplier's client set its modification time: a v2 digest.
	if _, _, err := f.l.SetMTime(ctx, f.delivered.ID, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Event{}); err != nil {
		t.Fatal(err)
	}
	f.quarantined = settle("/eicar.com", strings.Repeat("e", 64), Quarantined, "Eicar-Test-Signature FOUND")
	var err error
	f.receiving, err = f.l.Begin(ctx, NewTransfer(Transfer{Supplier: "acme", Path: "/partial.bin"}), Event{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.l.Append(ctx, Event{Kind: "notify.fail", TransferID: f.delivered.ID}); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestVerifyTransferRows(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		tamper func(f tamperFixture) (query string, args []any)
		want   func(f tamperFixture) (id string, reason string) // "" id: intact
	}{
		{"intact", nil, func(tamperFixture) (string, string) { return "", "" }},
		{"sha256 and size edited", func(f tamperFixture) (string, []any) {
			return `UPDATE transfers SET sha256 = $1, size = 5 WHERE id = $2`, []any{strings.Repeat("f", 64), f.delivered.ID}
		}, func(f tamperFixture) (string, string) {
			return f.delivered.ID, `size is "5", the events say "68"; sha256 is "ffff`
		}},
		{"quarantined turned delivered and clean", func(f tamperFixture) (string, []any) {
			return `UPDATE transfers SET state = 'delivered', scan_result = 'clean' WHERE id = $1`, []any{f.quarantined.ID}
		}, func(f tamperFixture) (string, string) {
			return f.quarantined.ID, `state is "delivered", the events say "quarantined"`
		}},
		{"destination edited", func(f tamperFixture) (string, []any) {
			return `UPDATE transfers SET destination = '/elsewhere' WHERE id = $1`, []any{f.delivered.ID}
		}, func(f tamperFixture) (string, string) {
			return f.delivered.ID, "does not match the digest of its latest event"
		}},
		{"path edited while receiving", func(f tamperFixture) (string, []any) {
			return `UPDATE transfers SET path = '/other.bin' WHERE id = $1`, []any{f.receiving.ID}
		}, func(f tamperFixture) (string, string) {
			return f.receiving.ID, "does not match the digest"
		}},
		{"updated_at edited", func(f tamperFixture) (string, []any) {
			return `UPDATE transfers SET updated_at = '2020-01-01T00:00:00.000000Z' WHERE id = $1`, []any{f.delivered.ID}
		}, func(f tamperFixture) (string, string) {
			return f.delivered.ID, "row edited"
		}},
		{"mtime edited", func(f tamperFixture) (string, []any) {
			return `UPDATE transfers SET mtime = '2020-01-01T00:00:00.000000Z' WHERE id = $1`, []any{f.delivered.ID}
		}, func(f tamperFixture) (string, string) {
			return f.delivered.ID, "does not match the digest"
		}},
		{"mtime set without its event", func(f tamperFixture) (string, []any) {
			return `UPDATE transfers SET mtime = '2020-01-01T00:00:00.000000Z' WHERE id = $1`, []any{f.quarantined.ID}
		}, func(f tamperFixture) (string, string) {
			return f.quarantined.ID, "does not match the digest"
		}},
		{"hidden without its event", func(f tamperFixture) (string, []any) {
			return `UPDATE transfers SET hidden_at = '2020-01-01T00:00:00.000000Z' WHERE id = $1`, []any{f.delivered.ID}
		}, func(f tamperFixture) (string, string) {
			return f.delivered.ID, "does not match the digest"
		}},
		{"row deleted", func(f tamperFixture) (string, []any) {
			return `DELETE FROM transfers WHERE id = $1`, []any{f.quarantined.ID}
		}, func(f tamperFixture) (string, string) {
			return f.quarantined.ID, "no transfer row, but audit events up to seq"
		}},
		{"row inserted", func(f tamperFixture) (string, []any) {
			return `INSERT INTO transfers (` + transferColumns + `) SELECT 'forged', direction, supplier, path, size, sha256, state,
				scan_result, destination, error, attempts, landing_key, node, remote_ip, created_at, updated_at, mtime, hidden_at, route, batch FROM transfers WHERE id = $1`,
				[]any{f.delivered.ID}
		}, func(tamperFixture) (string, string) {
			return "forged", "no audit event records this row"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
				f := newTamperFixture(t, dsn)
				if tt.tamper != nil {
					q, args := tt.tamper(f)
					if _, err := f.l.DB().ExecContext(t.Context(), q, args...); err != nil {
						t.Fatalf("%s: %v", q, err)
					}
				}
				wantID, wantReason := tt.want(f)
				for _, batch := range []int{1000, 2} {
					v, err := f.l.verifyAudit(t.Context(), batch, nil)
					if err != nil {
						t.Fatal(err)
					}
					if v.Broken || v.Rows == 0 || v.Unanchored != 0 {
						t.Errorf("batch %d: %+v; want the chain intact and every row anchored", batch, v)
					}
					if wantID == "" {
						if !v.Intact() {
							t.Errorf("batch %d: problems %v; want none", batch, v.Problems)
						}
						continue
					}
					if len(v.Problems) != 1 || v.Problems[0].TransferID != wantID || !strings.Contains(v.Problems[0].Reason, wantReason) {
						t.Errorf("batch %d: problems %v; want one for transfer %s saying %q", batch, v.Problems, wantID, wantReason)
					}
				}
			})
		})
	}
}

// A row last changed before row digests is not taken for tampered, and
// is counted apart; its deletion is still found.
func TestVerifyUnanchoredRows(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		f := newTamperFixture(t, dsn)
		// What an older airlock wrote: the same events without digests,
		// their hashes recomputed as it would have.
		rows, err := f.l.eventRows(ctx, `SELECT `+eventColumns+` FROM audit_events ORDER BY seq`)
		if err != nil {
			t.Fatal(err)
		}
		prev := ""
		for _, r := range rows {
			ev, err := r.event()
			if err != nil {
				t.Fatal(err)
			}
			delete(ev.Detail, RowKey)
			ev.PrevHash = prev
			if r, err = storedForm(ev); err != nil {
				t.Fatal(err)
			}
			r.Hash = r.chainHash()
			if _, err := f.l.DB().ExecContext(ctx, `UPDATE audit_events SET detail = $1, prev_hash = $2, hash = $3 WHERE seq = $4`,
				r.Detail, r.PrevHash, r.Hash, r.Seq); err != nil {
				t.Fatal(err)
			}
			prev = r.Hash
		}
		if _, err := f.l.DB().ExecContext(ctx, `UPDATE audit_head SET hash = $1`, prev); err != nil {
			t.Fatal(err)
		}
		v, err := f.l.Verify(ctx, nil)
		if err != nil || !v.Intact() || v.Rows != 3 || v.Unanchored != 3 {
			t.Fatalf("Verify = %+v, %v; want intact, 3 rows unanchored", v, err)
		}
		// A change now anchors the row.
		if _, err := f.l.Advance(ctx, f.receiving.ID, []State{Receiving}, Failed, Change{}, Event{}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.l.DB().ExecContext(ctx, `DELETE FROM transfers WHERE id = $1`, f.delivered.ID); err != nil {
			t.Fatal(err)
		}
		v, err = f.l.Verify(ctx, nil)
		if err != nil || v.Unanchored != 1 || len(v.Problems) != 1 || v.Problems[0].TransferID != f.delivered.ID {
			t.Errorf("Verify = %+v, %v; want 1 row unanchored and the deleted one reported", v, err)
		}
	})
}

func TestVerifyAnchors(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		f := newTamperFixture(t, dsn)
		seq, hash, err := f.l.Head(ctx)
		if err != nil || seq == 0 {
			t.Fatalf("Head = %d, %q, %v", seq, hash, err)
		}
		evs, err := f.l.Events(ctx, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		anchors := []Anchor{{Seq: 2, Hash: evs[1].Hash, Name: "a2"}, {Seq: seq, Hash: hash, Name: "head"}}
		if v, err := f.l.Verify(ctx, anchors); err != nil || !v.Intact() || v.Anchors != 2 {
			t.Fatalf("Verify = %+v, %v; want intact, 2 anchors agreeing", v, err)
		}

		// An attacker with the database alone rewrites the tail and the
		// head consistently: the chain verifies on its own, the anchors
		// do not. The last event is the notify.fail append, so that no
		// row loses its events.
		exec := func(q string, args ...any) {
			t.Helper()
			if _, err := f.l.DB().ExecContext(ctx, q, args...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		exec(`DELETE FROM audit_events WHERE seq = $1`, seq)
		prev := evs[seq-2].Hash
		r, err := storedForm(Event{Seq: seq, At: now(), Kind: "connect", Actor: "acme", PrevHash: prev})
		if err != nil {
			t.Fatal(err)
		}
		r.Hash = r.chainHash()
		exec(`INSERT INTO audit_events (`+eventColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			r.Seq, r.At, r.Kind, r.Actor, r.RemoteIP, r.ConnID, r.TransferID, r.Detail, r.PrevHash, r.Hash)
		exec(`UPDATE audit_head SET hash = $1`, r.Hash)
		if v, err := f.l.Verify(ctx, nil); err != nil || !v.Intact() {
			t.Fatalf("without anchors: Verify = %+v, %v; want intact (the limit anchors close)", v, err)
		}
		v, err := f.l.Verify(ctx, anchors)
		if err != nil || v.Broken || v.Anchors != 1 || len(v.Problems) != 1 || v.Problems[0].Anchor != "head" ||
			v.Problems[0].Seq != seq || !strings.Contains(v.Problems[0].Reason, "rewritten") {
			t.Errorf("rewritten: Verify = %+v, %v; want the head anchor reported", v, err)
		}

		// Cut short instead: the anchor lies past the end.
		exec(`DELETE FROM audit_events WHERE seq = $1`, seq)
		exec(`UPDATE audit_head SET seq = $1, hash = $2`, seq-1, prev)
		v, err = f.l.Verify(ctx, anchors)
		if err != nil || v.Broken || v.Anchors != 1 || len(v.Problems) != 1 || v.Problems[0].Anchor != "head" ||
			!strings.Contains(v.Problems[0].Reason, "chain ends at seq") {
			t.Errorf("cut short: Verify = %+v, %v; want the head anchor reported past the end", v, err)
		}
	})
}
