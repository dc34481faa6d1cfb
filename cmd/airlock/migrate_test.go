package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/airlock-gw/airlock/internal/ledger"
)

// TestMigrate: migrate creates the schema from nothing, from the
// configuration or from --database-env alone (a Postgres one when the test
// runs beside it), and a second run changes nothing. It sets the
// environment, so it does not run in parallel.
func TestMigrate(t *testing.T) {
	dir := writeTree(t, map[string]string{"airlock.yaml": "node: n\n", "suppliers/.keep": ""})
	tests := []struct {
		name string
		args []string
		db   string
	}{
		{"from the configuration", []string{"--config", filepath.Join(dir, "airlock.yaml")}, "sqlite:" + filepath.Join(dir, "state", "airlock.db")},
		{"from --database-env", []string{"--database-env", "AIRLOCK_TEST_MIGRATE_DB"}, "sqlite:" + filepath.Join(dir, "other.db")},
	}
	t.Setenv("AIRLOCK_TEST_MIGRATE_DB", "sqlite:"+filepath.Join(dir, "other.db"))
	if pg := os.Getenv("AIRLOCK_TEST_POSTGRES"); pg != "" {
		tests = append(tests, struct {
			name string
			args []string
			db   string
		}{"postgres", []string{"--database-env", "AIRLOCK_TEST_POSTGRES"}, pg})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 2 {
				stdout, stderr, err := run(t, append([]string{"migrate"}, tt.args...)...)
				if err != nil || stdout != "database schema up to date\n" {
					t.Fatalf("migrate: %v\nstdout %q\nstderr %q", err, stdout, stderr)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "other.db")); tt.name == "from --database-env" && err != nil {
				t.Errorf("the database named by the environment was not created: %v", err)
			}
			led, err := ledger.Open(context.Background(), tt.db)
			if err != nil {
				t.Fatal(err)
			}
			defer led.Close()
			// Opening the ledger migrates it again; River's tables are
			// migrate's alone.
			var n int
			if err := led.DB().QueryRow(`SELECT COUNT(*) FROM river_job`).Scan(&n); err != nil {
				t.Errorf("River's tables after migrate: %v", err)
			}
		})
	}
}

func TestMigrateDatabaseEnvUnset(t *testing.T) {
	t.Parallel()
	_, _, err := run(t, "migrate", "--database-env", "AIRLOCK_TEST_NEVER_SET")
	if err == nil || err.Error() != "--database-env: environment variable AIRLOCK_TEST_NEVER_SET is not set" {
		t.Errorf("migrate with an unset variable: %v", err)
	}
}
