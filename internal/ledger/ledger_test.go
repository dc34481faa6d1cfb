package ledger

import (
	"context"
	"database/sql"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-gw/airlock/internal/ledger/ledgertest"
)

func openLedger(t testing.TB, dsn string) *Ledger {
	t.Helper()
	l, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

func TestReopen(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		first, err := Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := first.Begin(ctx, NewTransfer(Transfer{Supplier: "acme", Path: "/a.csv"}), Event{})
		if err != nil {
			t.Fatal(err)
		}
		if err := first.Close(); err != nil {
			t.Fatal(err)
		}

		l := openLedger(t, dsn)
		got, err := l.Get(ctx, tr.ID)
		if err != nil {
			t.Fatalf("after re-open: %v", err)
		}
		if got != tr {
			t.Errorf("after re-open got %+v, want %+v", got, tr)
		}
		if err := l.migrate(ctx); err != nil {
			t.Fatalf("migrate again: %v", err)
		}
		files, err := fs.Glob(migrations, "migrations/*.sql")
		if err != nil {
			t.Fatal(err)
		}
		var applied int
		if err := l.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&applied); err != nil {
			t.Fatal(err)
		}
		if applied != len(files) {
			t.Errorf("schema_migrations has %d rows, want %d (one per file)", applied, len(files))
		}
		if n, err := l.VerifyAudit(ctx); err != nil || n != 1 {
			t.Errorf("VerifyAudit = %d, %v; want 1, nil", n, err)
		}
	})
}

func TestOpen(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, dsn, wantErr string
	}{
		{"unknown scheme, password hidden", "mysql://u:secret@host/db", `unsupported database "mysql"`},
		{"empty sqlite path", "sqlite:", "empty path"},
		{"question mark in sqlite path", "sqlite:/tmp/a?b.db", "must not contain '?'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Open(t.Context(), tt.dsn)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "secret") {
				t.Errorf("Open(%q) = %v, want error containing %q", tt.dsn, err, tt.wantErr)
			}
		})
	}

	t.Run("sqlite settings", func(t *testing.T) {
		t.Parallel()
		l := openLedger(t, "sqlite:"+filepath.Join(t.TempDir(), "new", "dir", "a.db"))
		ctx := context.Background()
		if err := l.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		for pragma, want := range map[string]string{"journal_mode": "wal", "foreign_keys": "1", "busy_timeout": "10000", "synchronous": "1"} {
			var got string
			if err := l.DB().QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("PRAGMA %s = %q, want %q", pragma, got, want)
			}
		}
	})
}

// TestCommitModes checks that a durable transaction commits with
// synchronous=FULL (2) and leaves the connection at NORMAL (1), which the
// relaxed ones, River's included, commit with.
func TestCommitModes(t *testing.T) {
	t.Parallel()
	l := openLedger(t, "sqlite:"+filepath.Join(t.TempDir(), "a.db"))
	ctx := t.Context()
	synchronous := func(q interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}) int {
		t.Helper()
		var n int
		if err := q.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, tt := range []struct {
		mode commitMode
		want int
	}{{relaxed, 1}, {durable, 2}, {relaxed, 1}} {
		var inside int
		if err := l.inTx(ctx, tt.mode, func(tx *sql.Tx) error {
			inside = synchronous(tx)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if inside != tt.want {
			t.Errorf("%v commit: synchronous = %d, want %d", tt.mode, inside, tt.want)
		}
		if got := synchronous(l.DB()); got != 1 {
			t.Errorf("after a %v commit the writer is at synchronous = %d, want 1", tt.mode, got)
		}
	}
}

// TestReadersStayOpen: connections of the read pool that were all busy at
// once are kept when they are done, not closed and opened again next time.
func TestReadersStayOpen(t *testing.T) {
	t.Parallel()
	l := openLedger(t, "sqlite:"+filepath.Join(t.TempDir(), "a.db"))
	conns := make([]*sql.Conn, sqliteReaders)
	for i := range conns {
		c, err := l.reads.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	for _, c := range conns {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if st := l.reads.Stats(); st.Idle != sqliteReaders || st.MaxIdleClosed != 0 {
		t.Errorf("after %d reads at once: %d idle, %d closed; want all %[1]d idle", sqliteReaders, st.Idle, st.MaxIdleClosed)
	}
}

// TestCommitInto pins which states must be on disk before Advance returns;
// a new state fails here until it is placed.
func TestCommitInto(t *testing.T) {
	t.Parallel()
	want := map[State]commitMode{
		Receiving: relaxed, Interrupted: durable, Received: durable, Scanning: relaxed, Delivering: relaxed,
		Delivered: relaxed, Quarantined: durable, Failed: durable,
		Queued: durable, AwaitingApproval: durable, Rejected: durable,
	}
	for _, st := range states {
		m, ok := want[st]
		if !ok {
			t.Errorf("state %s: no expectation", st)
			continue
		}
		if got := commitInto(st); got != m {
			t.Errorf("commitInto(%s) durable = %v, want %v", st, got, m)
		}
	}
}

// TestAuditRowidMigration upgrades a SQLite ledger whose audit events are
// keyed by a BIGINT, as before migration 0006: the chain keeps every event
// and still verifies, and the sequence number is the rowid, with no index
// of its own.
func TestAuditRowidMigration(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	l := openLedger(t, "sqlite:"+filepath.Join(t.TempDir(), "a.db"))
	exec := func(q string) {
		t.Helper()
		if _, err := l.DB().ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`DROP TABLE audit_events`)
	exec(`CREATE TABLE audit_events (seq BIGINT PRIMARY KEY, at TEXT NOT NULL, kind TEXT NOT NULL, actor TEXT NOT NULL,
		remote_ip TEXT NOT NULL, conn_id TEXT NOT NULL, transfer_id TEXT NOT NULL, detail TEXT NOT NULL,
		prev_hash TEXT NOT NULL, hash TEXT NOT NULL)`)
	exec(`CREATE INDEX audit_events_transfer ON audit_events (transfer_id, seq)`)
	exec(`UPDATE audit_head SET seq = 0, hash = ''`)
	exec(`DELETE FROM schema_migrations WHERE version = 6`)

	tr, err := l.Begin(ctx, NewTransfer(Transfer{Supplier: "acme", Path: "/a.csv"}), Event{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Advance(ctx, tr.ID, []State{Receiving}, Received, Change{}, Event{}); err != nil {
		t.Fatal(err)
	}
	if err := l.migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}

	if n, err := l.VerifyAudit(ctx); err != nil || n != 2 {
		t.Errorf("VerifyAudit = %d, %v; want 2, nil", n, err)
	}
	if evs, err := l.Events(ctx, tr.ID, 0); err != nil || len(evs) != 2 {
		t.Errorf("events of the transfer = %d, %v; want 2", len(evs), err)
	}
	var autoIndexes int
	if err := l.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master
		WHERE type = 'index' AND tbl_name = 'audit_events' AND name LIKE 'sqlite_autoindex%'`).Scan(&autoIndexes); err != nil {
		t.Fatal(err)
	}
	if autoIndexes != 0 {
		t.Errorf("audit_events has %d automatic indexes after the migration, want none", autoIndexes)
	}
	if _, err := l.Append(ctx, Event{Kind: "after"}); err != nil {
		t.Fatalf("append after the migration: %v", err)
	}
	checkChain(t, l, 3, 0)
}
