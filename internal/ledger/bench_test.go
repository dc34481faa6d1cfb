package ledger

import (
	"path/filepath"
	"testing"
)

// BenchmarkUploadRecords is the ledger's share of one small upload on
// SQLite: the relaxed receiving row at its open and the durable received
// commit at its close, each with its audit event. The session waits for
// both.
func BenchmarkUploadRecords(b *testing.B) {
	l := openLedger(b, "sqlite:"+filepath.Join(b.TempDir(), "airlock.db"))
	ctx := b.Context()
	size, sha := int64(65536), "9f2c5a0e1d7b3c8a6e4f2d0b9a7c5e3f1d8b6a4c2e0f9d7b5a3c1e8f6d4b2a09"
	for b.Loop() {
		tr, err := l.Begin(ctx, NewTransfer(Transfer{Supplier: "acme", Path: "/batch/data.csv", Node: "node-1", RemoteIP: "203.0.113.7", LandingKey: "acme/KEY"}),
			Event{Kind: "upload.start", Actor: "acme", ConnID: "c1"})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := l.Advance(ctx, tr.ID, []State{Receiving}, Received, Change{Size: &size, SHA256: &sha},
			Event{Kind: "upload.finish", Actor: "acme", ConnID: "c1"}); err != nil {
			b.Fatal(err)
		}
	}
}
