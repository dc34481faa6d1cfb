package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoServerDependencies: the desktop binary carries none of the
// gateway's server: no SSH server, job queue or embedded database.
func TestNoServerDependencies(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	server := []string{"airlock/internal/sftpd", "airlock/internal/pipeline", "airlock/internal/ledger",
		"github.com/riverqueue/river", "modernc.org/sqlite", "golang.org/x/crypto/ssh"}
	for _, pkg := range strings.Fields(string(out)) {
		for _, s := range server {
			if strings.Contains(pkg, s) {
				t.Errorf("airlock-release imports %s", pkg)
			}
		}
	}
}
