package testpeer

import (
	"cmp"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// StartPostgres runs a throwaway Postgres server for the test, as
// scripts/with-postgres.sh does: a fresh cluster in a temporary directory,
// reachable only through a Unix socket there (so it never clashes with a
// port), with fsync off, removed when the test ends. It returns the URL of
// an empty database, for airlock.yaml's database. Without a Postgres
// server installed the test is skipped, or fails when CI=true.
func StartPostgres(tb testing.TB) string {
	tb.Helper()
	bin := postgresBin()
	if bin == "" {
		bin = filepath.Dir(Require(tb, "initdb")) // skips, or fails when CI=true
	}
	// Not tb.TempDir: a Unix socket path must stay under 108 bytes.
	dir, err := os.MkdirTemp("", "pg")
	if err != nil {
		tb.Fatal(err)
	}
	// Postgres refuses to run as root: the cluster then belongs to the
	// postgres user.
	var as []string
	if os.Getuid() == 0 {
		if out, err := exec.Command("chown", "postgres", dir).CombinedOutput(); err != nil {
			tb.Fatalf("chown postgres %s: %v\n%s", dir, err, out)
		}
		as = []string{"runuser", "-u", "postgres", "--"}
	}
	run := func(name string, args ...string) {
		tb.Helper()
		argv := append(append(slices.Clone(as), filepath.Join(bin, name)), args...)
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			tb.Fatalf("%s: %v\n%s\n%s", name, err, out, log)
		}
	}
	data := filepath.Join(dir, "data")
	tb.Cleanup(func() {
		argv := append(slices.Clone(as), filepath.Join(bin, "pg_ctl"), "-D", data, "-m", "immediate", "stop")
		_ = exec.Command(argv[0], argv[1:]...).Run()
		if tb.Failed() {
			if log, err := os.ReadFile(filepath.Join(dir, "server.log")); err == nil {
				tb.Logf("postgres log:\n%s", log)
			}
		}
		os.RemoveAll(dir)
	})
	run("initdb", "-D", data, "-A", "trust", "-U", "postgres")
	run("pg_ctl", "-D", data, "-l", filepath.Join(dir, "server.log"), "-w", "-o",
		"-c listen_addresses='' -c unix_socket_directories='"+dir+"' -c fsync=off -c max_connections=200", "start")
	run("createdb", "-h", dir, "-U", "postgres", "airlock")
	return "postgres://postgres@/airlock?host=" + dir
}

// postgresBin is the directory of the newest Debian Postgres server, or "".
func postgresBin() string {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// By length first: 9 before 15.
	slices.SortFunc(bins, func(a, b string) int { return cmp.Or(cmp.Compare(len(a), len(b)), strings.Compare(a, b)) })
	for _, b := range slices.Backward(bins) {
		if isExecutable(filepath.Join(b, "initdb")) {
			return b
		}
	}
	return ""
}
