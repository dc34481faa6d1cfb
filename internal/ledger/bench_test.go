package ledger

import (
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkSmallUpload is the ledger's share of one small upload on SQLite:
// "record" is the session's, the durable commit at its close that records
// it received with both its events, which the client waits for; "advance"
// is one of the three relaxed state changes the pipeline then makes.
func BenchmarkSmallUpload(b *testing.B) {
	size, sha := int64(65536), "9f2c5a0e1d7b3c8a6e4f2d0b9a7c5e3f1d8b6a4c2e0f9d7b5a3c1e8f6d4b2a09"
	record := func(b *testing.B, l *Ledger) Transfer {
		tr, err := l.Record(b.Context(), NewTransfer(Transfer{Supplier: "acme", Path: "/batch/data.csv", Node: "node-1", RemoteIP: "203.0.113.7", LandingKey: "acme/S.KEY"}),
			Event{ConnID: "c1"}, Received, Change{Size: &size, SHA256: &sha}, Event{Kind: "upload.finish", ConnID: "c1"})
		if err != nil {
			b.Fatal(err)
		}
		return tr
	}
	b.Run("record", func(b *testing.B) {
		l := openLedger(b, "sqlite:"+filepath.Join(b.TempDir(), "airlock.db"))
		for b.Loop() {
			record(b, l)
		}
	})
	b.Run("advance", func(b *testing.B) {
		l := openLedger(b, "sqlite:"+filepath.Join(b.TempDir(), "airlock.db"))
		for b.Loop() {
			b.StopTimer()
			tr := record(b, l)
			b.StartTimer()
			if _, err := l.Advance(b.Context(), tr.ID, []State{Received}, Scanning, Change{}, Event{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkNameTaken is the read an SFTP open of a name makes when it must
// know whether the name is taken (CREAT|EXCL, or the overwrite policy
// deny): the supplier's newest transfer of the path in the given states,
// on a ledger of 20,000 transfers of 2,000 names, 10 uploads each.
func BenchmarkNameTaken(b *testing.B) {
	l := openLedger(b, "sqlite:"+filepath.Join(b.TempDir(), "airlock.db"))
	ctx := b.Context()
	tx, err := l.DB().BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := range 20_000 {
		tr := NewTransfer(Transfer{Supplier: "acme", Path: fmt.Sprintf("/daily/report-%d.csv", i%2000)})
		tr.State = Delivered
		if err := insertTransfer(ctx, tx, tr); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	states := []State{Received, Scanning, Delivering, Delivered}
	for _, bb := range []struct{ name, path string }{{"taken", "/daily/report-7.csv"}, {"free", "/daily/new.csv"}} {
		b.Run(bb.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := l.List(ctx, Filter{Supplier: "acme", Path: bb.path, States: states, Limit: 1}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRowDigest is what anchoring a row in its event adds to each
// Begin, Record and Advance, beside the event's longer detail.
func BenchmarkRowDigest(b *testing.B) {
	tr := NewTransfer(Transfer{Supplier: "acme", Path: "/batch/data.csv", Node: "node-1", RemoteIP: "203.0.113.7",
		LandingKey: "acme/S.KEY", SHA256: "9f2c5a0e1d7b3c8a6e4f2d0b9a7c5e3f1d8b6a4c2e0f9d7b5a3c1e8f6d4b2a09", Size: 65536})
	for b.Loop() {
		anchorRow(&Event{}, tr)
	}
}
