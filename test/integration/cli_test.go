package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestValidate: a tree with five distinct mistakes gives five file:line:
// errors and exit status 1; a good tree passes.
func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		config   string
		wantExit int
		wantErrs int
	}{
		{"five mistakes", "../../internal/config/testdata/five-mistakes/airlock.yaml", 1, 5},
		{"valid", "../../internal/config/testdata/valid/airlock.yaml", 0, 0},
		{"the README example", "../../examples/airlock.yaml", 0, 0},
		{"missing file", "../../internal/config/testdata/nope/airlock.yaml", 1, 0},
	}
	fileLine := regexp.MustCompile(`^\S+\.yaml:\d+: \S`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(airlockBin, "validate", "--config", tt.config)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			exit := 0
			if errors.As(err, &ee) {
				exit = ee.ExitCode()
			}
			if exit != tt.wantExit {
				t.Fatalf("exit %d, want %d\n%s", exit, tt.wantExit, stderr.String())
			}
			n := 0
			for _, line := range strings.Split(stderr.String(), "\n") {
				if fileLine.MatchString(line) {
					n++
				}
			}
			if n != tt.wantErrs {
				t.Fatalf("%d file:line: errors, want %d:\n%s", n, tt.wantErrs, stderr.String())
			}
		})
	}
}

// TestTransfersCLI: list filters by state and show prints the row with its
// audit events, both as JSON with the documented field names.
func TestTransfersCLI(t *testing.T) {
	t.Parallel()
	g, key := startAcme(t, gatewayOpts{}, supplierSpec{})
	src, sha := randomFile(t, smallSize)
	if out, err := g.sftpBatch("acme", key, fmt.Sprintf("put %s a.csv\n", src)); err != nil {
		t.Fatalf("sftp: %v\n%s", err, out)
	}
	assertArrived(t, g, "acme", "/a.csv", sha, smallSize)

	out, errOut, err := g.airlock("transfers", "list", "--state", "delivered", "--json")
	if err != nil {
		t.Fatalf("list: %v\n%s", err, errOut)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	for _, field := range []string{"id", "direction", "supplier", "path", "size", "sha256", "state", "scan_result", "destination", "error", "created_at", "updated_at"} {
		if _, ok := rows[0][field]; !ok {
			t.Errorf("transfer JSON lacks %q", field)
		}
	}
	if rows[0]["sha256"] != sha || rows[0]["state"] != "delivered" || rows[0]["direction"] != "ingress" ||
		!strings.HasPrefix(rows[0]["scan_result"].(string), "clean") || !strings.HasSuffix(rows[0]["destination"].(string), "/a.csv") {
		t.Fatalf("row: %v", rows[0])
	}

	if out, _, _ := g.airlock("transfers", "list", "--state", "failed", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("failed transfers: %s", out)
	}
	if _, errOut, err := g.airlock("transfers", "list", "--state", "bogus"); err == nil || !strings.Contains(errOut, "bogus") {
		t.Fatalf("a bad --state was accepted: %v %s", err, errOut)
	}

	out, errOut, err = g.airlock("transfers", "show", rows[0]["id"].(string), "--json")
	if err != nil {
		t.Fatalf("show: %v\n%s", err, errOut)
	}
	var shown struct {
		ID     string `json:"id"`
		Events []struct {
			Kind string `json:"kind"`
		} `json:"events"`
	}
	if err := json.Unmarshal([]byte(out), &shown); err != nil || shown.ID != rows[0]["id"] {
		t.Fatalf("show --json: %v\n%s", err, out)
	}
	var kinds []string
	for _, e := range shown.Events {
		kinds = append(kinds, e.Kind)
	}
	// The upload, then the pipeline's state changes; the notifications
	// (notify.sent) may still be on their way.
	const want = "upload.start,upload.finish,transfer.scanning,transfer.delivering,transfer.delivered"
	if got := strings.Join(kinds, ","); !strings.HasPrefix(got, want) {
		t.Fatalf("events of the transfer: %s, want %s first", got, want)
	}
	if _, errOut, err := g.airlock("transfers", "show", "nope"); err == nil || !strings.Contains(errOut, "not found") {
		t.Fatalf("show of an unknown id: %v %s", err, errOut)
	}
}
