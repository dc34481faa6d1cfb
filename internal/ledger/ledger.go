// Package ledger is airlock's record of truth: a row per transfer and a
// tamper-evident, hash-chained audit log, in SQLite (the embedded default) or
// Postgres (several nodes sharing one database). All SQL is written to run
// unchanged on both.
package ledger

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	"modernc.org/sqlite"               // registers "sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Ledger is safe for concurrent use.
//
// Statements are not prepared here: each SQLite connection keeps those it
// has run (see cachingConnector), and pgx does the same on Postgres.
type Ledger struct {
	writes *sql.DB // transactions, and River
	reads  *sql.DB // reads outside a transaction; writes itself on Postgres
	// relaxed: the writer commits with SQLite's synchronous=NORMAL, so a
	// durable commit must ask for FULL.
	relaxed  bool
	postgres bool
}

// Open opens "sqlite:<path>" or "postgres://…" ("postgresql://…") and
// brings the schema up to date.
func Open(ctx context.Context, dsn string) (*Ledger, error) {
	l := &Ledger{}
	var err error
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		l.writes, l.reads, err = openSQLite(ctx, strings.TrimPrefix(dsn, "sqlite:"))
		l.relaxed = true
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		l.writes, err = sql.Open("pgx", dsn)
		l.reads = l.writes
		l.postgres = true
	default:
		// Only the scheme: the rest may hold a password.
		scheme, _, _ := strings.Cut(dsn, ":")
		err = fmt.Errorf("unsupported database %q: want sqlite:PATH or postgres://…", scheme)
	}
	if err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	if err := l.writes.PingContext(ctx); err != nil {
		l.Close()
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	if err := l.migrate(ctx); err != nil {
		l.Close()
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	return l, nil
}

// sqliteReaders is how many reads of this process may run at once beside
// the writer.
const sqliteReaders = 4

func openSQLite(ctx context.Context, file string) (writes, reads *sql.DB, err error) {
	if file == "" {
		return nil, nil, errors.New("sqlite: empty path")
	}
	// The driver reads everything after the first '?' as parameters.
	if strings.Contains(file, "?") {
		return nil, nil, fmt.Errorf("sqlite: path %q must not contain '?'", file)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o750); err != nil {
		return nil, nil, fmt.Errorf("sqlite: %w", err)
	}
	// Immediate transactions take the write lock up front, so a
	// transaction never fails half-way on a lock upgrade; busy_timeout
	// makes other processes wait for that lock instead of failing.
	//
	// synchronous=NORMAL: in WAL mode a commit then survives a crash of
	// the process, and only a crash of the machine can undo the latest
	// ones; the commits that must survive that too ask for it (see
	// commitMode), and the others save an fsync each.
	w, err := openSQLiteDB(file + "?_txlock=immediate" +
		"&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)")
	if err != nil {
		return nil, nil, err
	}
	// SQLite has a single writer anyway; one connection queues this
	// process's transactions in Go rather than in SQLite's busy loop.
	w.SetMaxOpenConns(1)
	if err := useWAL(ctx, w); err != nil {
		w.Close()
		return nil, nil, fmt.Errorf("sqlite: %w", err)
	}
	// Reads get connections of their own: on the writer's, a request for a
	// directory listing would wait behind every commit's fsync. WAL gives
	// each read a consistent snapshot of what was committed.
	r, err := openSQLiteDB(file + "?_pragma=busy_timeout(10000)&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, nil, err
	}
	r.SetMaxOpenConns(sqliteReaders)
	// database/sql keeps two idle connections unless told: a third read at
	// once would open a connection, parse the schema and prepare its
	// statements, and then close it again.
	r.SetMaxIdleConns(sqliteReaders)
	return w, r, nil
}

// openSQLiteDB opens a pool whose connections keep their statements (see
// cachingConnector).
func openSQLiteDB(dsn string) (*sql.DB, error) {
	c, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(cachingConnector{c}), nil
}

// useWAL puts the database in WAL mode, which lets readers (the CLI, a
// second process, this process's read pool) run beside the writer. The
// mode is kept in the file, so this changes something only on a new
// database, where processes starting together race to do it, and SQLite
// refuses the switch with SQLITE_BUSY at once instead of waiting
// busy_timeout: hence the retries.
func useWAL(ctx context.Context, db *sql.DB) error {
	const wait, every = 10 * time.Second, 10 * time.Millisecond
	deadline := time.Now().Add(wait)
	for {
		_, err := db.ExecContext(ctx, `PRAGMA journal_mode=WAL`)
		var se *sqlite.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY || time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("journal_mode WAL: %w", err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
}

// Close closes the database.
func (l *Ledger) Close() error {
	err := l.writes.Close()
	if l.reads != l.writes {
		err = errors.Join(err, l.reads.Close())
	}
	return err
}

// queryRow runs query in tx, or on the read pool when tx is nil.
func (l *Ledger) queryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) *sql.Row {
	if tx != nil {
		return tx.QueryRowContext(ctx, query, args...)
	}
	return l.reads.QueryRowContext(ctx, query, args...)
}

// Ping checks that the database answers (for /readyz).
func (l *Ledger) Ping(ctx context.Context) error {
	if err := l.writes.PingContext(ctx); err != nil {
		return fmt.Errorf("ping ledger: %w", err)
	}
	return nil
}

// DB returns the underlying pool, for the job queue that shares the database.
func (l *Ledger) DB() *sql.DB { return l.writes }

// Postgres reports whether the database is Postgres rather than SQLite.
func (l *Ledger) Postgres() bool { return l.postgres }

//go:embed migrations/*.sql
var migrations embed.FS

// migrate applies, in name order, each migrations/NNNN_name.sql not yet
// recorded in schema_migrations, one transaction per file. A file named
// NNNN_name.sqlite.sql changes what is SQLite's alone: Postgres records it
// without running it.
func (l *Ledger) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, name := range names {
		if err := l.applyMigration(ctx, name); err != nil {
			return fmt.Errorf("migrate %s: %w", path.Base(name), err)
		}
	}
	return nil
}

func (l *Ledger) applyMigration(ctx context.Context, name string) error {
	prefix, _, _ := strings.Cut(path.Base(name), "_")
	version, err := strconv.Atoi(prefix)
	if err != nil {
		return fmt.Errorf("file name must start with a number: %w", err)
	}
	body, err := migrations.ReadFile(name)
	if err != nil {
		return err
	}
	return l.inTx(ctx, durable, func(tx *sql.Tx) error {
		// Nodes starting together would otherwise race to apply the same
		// file. (SQLite's immediate transactions already exclude each other.)
		if l.postgres {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7243519)`); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    BIGINT PRIMARY KEY,
			applied_at TEXT NOT NULL
		)`); err != nil {
			return err
		}
		var n int
		err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = $1`, version).Scan(&n)
		if err != nil {
			return err
		}
		if n > 0 {
			return nil // applied before
		}
		if !l.postgres || !strings.HasSuffix(name, ".sqlite.sql") {
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`,
			version, formatTime(now()))
		return err
	})
}

// commitMode says what a transaction's commit must survive.
type commitMode bool

const (
	// relaxed commits survive a crash of the process but may be undone
	// by a crash of the machine: for changes that are made again when
	// lost, such as a transfer entering a state the pipeline passes
	// through, which it re-reads before each step.
	relaxed commitMode = false
	// durable commits are on disk when the commit returns: for what a
	// client is told, and what bytes are deleted on the strength of.
	// Everything committed before is then on disk too.
	durable commitMode = true
)

// inTx runs fn in a write transaction and commits it as mode says.
func (l *Ledger) inTx(ctx context.Context, mode commitMode, fn func(*sql.Tx) error) error {
	if mode == durable && l.relaxed {
		return l.durableTx(ctx, fn)
	}
	tx, err := l.writes.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	return runTx(tx, fn)
}

func runTx(tx *sql.Tx, fn func(*sql.Tx) error) error {
	if err := fn(tx); err != nil {
		_ = tx.Rollback() // the error from fn is the one worth reporting
		return err
	}
	return tx.Commit()
}

// durableTx runs fn in a transaction that commits with synchronous=FULL
// on the writer's connection, which runs at NORMAL otherwise.
func (l *Ledger) durableTx(ctx context.Context, fn func(*sql.Tx) error) error {
	conn, err := l.writes.Conn(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }() // back to the pool: nothing to report
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = FULL`); err != nil {
		return err
	}
	defer func() {
		// Even when ctx has ended: the connection goes back to the pool.
		// One that cannot be set back is dropped rather than left slow.
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA synchronous = NORMAL`); err != nil {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	return runTx(tx, fn)
}

// Timestamps are stored as fixed-width UTC text so that both engines order
// and compare them correctly as plain strings.
const timeLayout = "2006-01-02T15:04:05.000000Z"

// now is truncated to what is stored, so values returned by a write equal
// those read back later.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) (time.Time, error) { return time.Parse(timeLayout, s) }

// parseNullTime parses a nullable time column: nil for NULL.
func parseNullTime(s sql.NullString) (*time.Time, error) {
	if !s.Valid {
		return nil, nil
	}
	t, err := parseTime(s.String)
	if err != nil {
		return nil, err
	}
	return &t, nil
}
