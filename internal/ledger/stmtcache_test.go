package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

func openCachingDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := openSQLiteDB(filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1) // every query on the one connection and its cache
	t.Cleanup(func() { db.Close() })
	if _, err := db.ExecContext(t.Context(), `CREATE TABLE t (n INTEGER)`); err != nil {
		t.Fatal(err)
	}
	return db
}

// kept returns how many statements the pool's one connection keeps.
func kept(t *testing.T, db *sql.DB) int {
	t.Helper()
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var n int
	if err := conn.Raw(func(dc any) error {
		n = len(dc.(*cachingConn).stmts)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func count(ctx context.Context, t *testing.T, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) int {
	t.Helper()
	var n int
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestStatementCache(t *testing.T) {
	t.Parallel()

	t.Run("kept and run again", func(t *testing.T) {
		t.Parallel()
		db := openCachingDB(t)
		ctx := t.Context()
		before := kept(t, db)
		for i := range 5 {
			if _, err := db.ExecContext(ctx, `INSERT INTO t (n) VALUES ($1)`, i); err != nil {
				t.Fatal(err)
			}
		}
		if got := count(ctx, t, db); got != 5 {
			t.Errorf("count = %d, want 5", got)
		}
		if got := kept(t, db) - before; got != 2 {
			t.Errorf("%d more statements kept, want 2 (the insert and the count)", got)
		}
	})

	t.Run("same text while its rows are open", func(t *testing.T) {
		t.Parallel()
		db := openCachingDB(t)
		ctx := t.Context()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		for i := range 3 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO t (n) VALUES ($1)`, i); err != nil {
				t.Fatal(err)
			}
		}
		const q = `SELECT n FROM t ORDER BY n`
		outer, err := tx.QueryContext(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		for outer.Next() {
			var n int
			if err := outer.Scan(&n); err != nil {
				t.Fatal(err)
			}
			// The same text again, while outer still reads from the kept
			// statement: it must not reset outer's position.
			inner, err := tx.QueryContext(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			rows := 0
			for inner.Next() {
				rows++
			}
			inner.Close()
			if rows != 3 {
				t.Errorf("inner query read %d rows, want 3", rows)
			}
			if got = append(got, n); len(got) > 3 {
				t.Fatalf("outer query read %v and goes on: the inner one reset it", got)
			}
		}
		if err := outer.Err(); err != nil {
			t.Fatal(err)
		}
		outer.Close()
		if fmt.Sprint(got) != "[0 1 2]" {
			t.Errorf("outer query read %v, want [0 1 2]", got)
		}
	})

	t.Run("bounded", func(t *testing.T) {
		t.Parallel()
		db := openCachingDB(t)
		ctx := t.Context()
		for i := range stmtCacheSize + 20 {
			var n int
			if err := db.QueryRowContext(ctx, fmt.Sprintf(`SELECT %d`, i)).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != i {
				t.Fatalf("SELECT %d = %d", i, n)
			}
		}
		if got := kept(t, db); got != stmtCacheSize {
			t.Errorf("%d statements kept, want %d", got, stmtCacheSize)
		}
	})

	t.Run("schema change", func(t *testing.T) {
		t.Parallel()
		db := openCachingDB(t)
		ctx := t.Context()
		columns := func() int {
			rows, err := db.QueryContext(ctx, `SELECT * FROM t`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			cols, err := rows.Columns()
			if err != nil {
				t.Fatal(err)
			}
			return len(cols)
		}
		if got := columns(); got != 1 {
			t.Fatalf("%d columns, want 1", got)
		}
		if _, err := db.ExecContext(ctx, `ALTER TABLE t ADD COLUMN m TEXT`); err != nil {
			t.Fatal(err)
		}
		if got := columns(); got != 2 {
			t.Errorf("after ALTER TABLE the kept statement gives %d columns, want 2", got)
		}
	})
}

// TestStatementsRunToTheirEnd: a context's end keeps a statement from
// starting, but does not interrupt one that runs (see runToEnd).
func TestStatementsRunToTheirEnd(t *testing.T) {
	t.Parallel()
	const rows = 300000
	slow := fmt.Sprintf(`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < %d) SELECT count(*) FROM c`, rows)
	db := openCachingDB(t)

	t.Run("ended before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		var n int
		if err := db.QueryRowContext(ctx, slow).Scan(&n); !errors.Is(err, context.Canceled) {
			t.Fatalf("query = %d, %v; want context.Canceled", n, err)
		}
	})
	t.Run("ended while it runs", func(t *testing.T) {
		conn, err := db.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		time.AfterFunc(5*time.Millisecond, cancel)
		var n int
		start := time.Now()
		if err := conn.QueryRowContext(ctx, slow).Scan(&n); err != nil || n != rows {
			t.Fatalf("query = %d, %v; want %d", n, err, rows)
		}
		if took := time.Since(start); took < 10*time.Millisecond {
			t.Skipf("the query took %s, too short to be cancelled while it ran", took)
		}
	})
}
