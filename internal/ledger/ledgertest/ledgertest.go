// Package ledgertest runs tests against every database the ledger
// supports: a fresh SQLite file, and a fresh Postgres schema in the
// database AIRLOCK_TEST_POSTGRES names (scripts/with-postgres.sh starts
// one). With CI=true a missing Postgres fails the test.
package ledgertest

import (
	"crypto/rand"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
)

// ForEachBackend runs fn as parallel subtests "sqlite" and "postgres", each
// with a DSN of its own that ledger.Open accepts (and can open again).
func ForEachBackend(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, SQLite(t))
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := Postgres(t)
		t.Parallel()
		fn(t, dsn)
	})
}

// SQLite returns the DSN of a fresh SQLite ledger in a temporary directory.
func SQLite(t testing.TB) string {
	return "sqlite:" + filepath.Join(t.TempDir(), "state", "airlock.db")
}

// Postgres returns the DSN of a fresh schema in the database
// AIRLOCK_TEST_POSTGRES names; without one the test is skipped, or fails
// with CI=true.
func Postgres(t *testing.T) string {
	t.Helper()
	base := os.Getenv("AIRLOCK_TEST_POSTGRES")
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("AIRLOCK_TEST_POSTGRES is not set: run the tests through scripts/with-postgres.sh (make unit and make integration do)")
		}
		t.Skip("AIRLOCK_TEST_POSTGRES is not set; scripts/with-postgres.sh sets it (with CI=true this fails)")
	}
	return freshSchema(t, base)
}

// freshSchema creates a schema of its own for one test and returns a DSN
// whose search_path points at it.
func freshSchema(t *testing.T, base string) string {
	t.Helper()
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	schema := "airlock_test_" + strings.ToLower(rand.Text()[:12])
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if _, err := db.Exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema
}
