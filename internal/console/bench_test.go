package console

import (
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger/ledgertest"
)

// BenchmarkPages renders each page on a ledger of AIRLOCK_BENCH_TRANSFERS
// transfers (default 1,000,000) over 30 days: 50 suppliers, 20 routes, 2%
// failed, 1% quarantined, 0.1% held for approval. SQLite, or Postgres with
// AIRLOCK_BENCH_POSTGRES=1 (through scripts/with-postgres.sh).
func BenchmarkPages(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("AIRLOCK_BENCH_TRANSFERS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	dsn := ledgertest.SQLite(b)
	if os.Getenv("AIRLOCK_BENCH_POSTGRES") != "" {
		dsn = benchSchema(b, os.Getenv("AIRLOCK_TEST_POSTGRES"))
	}
	f := newFixtureOn(b, dsn, config.Console{PublicURL: "https://airlock.example"})
	filled := time.Now()
	sha, name := fill(b, f, n)
	b.Logf("%d transfers inserted in %s", n, time.Since(filled).Round(time.Millisecond))
	ck := f.cookie(b, approver)
	for _, page := range []string{
		"/", "/transfers", "/transfers?supplier=supplier_7", "/transfers?route=route_3", "/transfers?state=failed",
		"/transfers?state=quarantined&supplier=supplier_3", "/transfers?direction=egress&from=2026-01-01",
		"/transfers?sha256=" + sha, "/transfers?name=" + name, "/approvals", "/batches",
		"/transfers/bench" + fmt.Sprintf("%020d", n/2),
	} {
		b.Run(cmp.Or(strings.TrimPrefix(page, "/"), "overview"), func(b *testing.B) {
			for b.Loop() {
				if w := f.do(b, "GET", page, ck, nil, nil); w.Code != http.StatusOK {
					b.Fatalf("%s: %d", page, w.Code)
				}
			}
		})
	}
}

// fill inserts n transfers straight into the table, as months of use
// would leave them; it returns a sha256 and a name that occur once.
func fill(b *testing.B, f *fixture, n int) (sha, name string) {
	b.Helper()
	ctx := b.Context()
	tx, err := f.led.DB().BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO transfers (id, direction, supplier, path, size, sha256, state,
		scan_result, destination, error, attempts, landing_key, node, remote_ip, created_at, updated_at, route, batch)
		VALUES ($1, $2, $3, $4, $5, $6, $7, '', 'dest', '', 1, $8, 'n1', '203.0.113.7', $9, $9, $10, '')`)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now().Add(-30 * 24 * time.Hour)
	step := 30 * 24 * time.Hour / time.Duration(n)
	for i := range n {
		sum := sha256.Sum256([]byte(strconv.Itoa(i)))
		state, dir, route := "delivered", "ingress", ""
		switch {
		case i%1000 == 7:
			state = "awaiting_approval"
		case i%100 == 3:
			state = "quarantined"
		case i%50 == 1:
			state = "failed"
		}
		if i%4 == 0 {
			dir, route = "egress", fmt.Sprintf("route_%d", i%20)
		}
		at := start.Add(time.Duration(i) * step).UTC().Format("2006-01-02T15:04:05.000000Z")
		path := fmt.Sprintf("/2026/file-%07d.csv", i)
		if _, err := stmt.ExecContext(ctx, fmt.Sprintf("bench%020d", i), dir, fmt.Sprintf("supplier_%d", i%50), path,
			int64(1000+i%5000), hex.EncodeToString(sum[:]), state, "key"+path, at, route); err != nil {
			b.Fatal(err)
		}
		if i == n/2 {
			sha, name = hex.EncodeToString(sum[:]), fmt.Sprintf("file-%07d", i)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	if f.led.Postgres() { // as autovacuum would, some time after such a load
		if _, err := f.led.DB().ExecContext(ctx, `ANALYZE transfers`); err != nil {
			b.Fatal(err)
		}
	}
	return sha, name
}

// benchSchema makes a schema of its own in the Postgres database at base
// and returns the DSN that uses it.
func benchSchema(b *testing.B, base string) string {
	b.Helper()
	if base == "" {
		b.Skip("AIRLOCK_TEST_POSTGRES is not set: run through scripts/with-postgres.sh")
	}
	db, err := sql.Open("pgx", base)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	schema := "airlock_bench_" + strings.ToLower(rand.Text()[:12])
	if _, err := db.ExecContext(b.Context(), "CREATE SCHEMA "+schema); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if db, err := sql.Open("pgx", base); err == nil {
			_, _ = db.Exec("DROP SCHEMA " + schema + " CASCADE") // a scratch database: a leftover is harmless
			db.Close()
		}
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema
}
