package main

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/config"
)

// keysTree writes a tree whose keys are: acme's ed25519 key expiring in
// about 10 days, its RSA key that has expired, and its spare key that never
// expires; globex's key expiring in about 60 days at a given time.
func keysTree(t *testing.T) (cfg string, soon time.Time, later time.Time) {
	t.Helper()
	now := time.Now().UTC()
	soonDate := now.AddDate(0, 0, 10).Format(time.DateOnly)
	soon, _ = time.Parse(time.DateOnly, soonDate)
	soon = soon.AddDate(0, 0, 1) // a date expires at the end of that day
	later = now.AddDate(0, 0, 60).Truncate(time.Hour).Add(30 * time.Minute)
	dir := writeTree(t, map[string]string{
		"airlock.yaml": "node: n\n",
		"suppliers/acme.yaml": "name: acme\nemail: data@acme.example\nallowed_ips: [203.0.113.0/24]\nssh_keys:\n" +
			"  - {key: \"" + testEdKey + "\", expires: " + soonDate + "}\n" +
			"  - {key: \"" + testRSA2048Key + "\", expires: 2020-01-31}\n" +
			"  - \"" + testSpareKey + "\"\n" +
			"destination:\n  url: s3://land/acme\n",
		"suppliers/globex.yaml": "name: globex\nemail: sftp@globex.example\nallowed_ips: [192.0.2.10]\nssh_keys:\n" +
			"  - key: \"" + testGlobexKey + "\"\n    expires: \"" + later.Format(time.RFC3339) + "\"\n" +
			"destination:\n  url: s3://land/globex\n",
	})
	return filepath.Join(dir, "airlock.yaml"), soon, later
}

func TestKeysList(t *testing.T) {
	t.Parallel()
	cfg, soon, later := keysTree(t)
	soonDays := config.DaysLeft(soon, time.Now())
	soonDate := soon.AddDate(0, 0, -1).Format(time.DateOnly)
	fields := func(lines ...string) [][]string {
		var out [][]string
		for _, l := range lines {
			out = append(out, strings.Split(l, "|"))
		}
		return out
	}
	expiresIn := func(n int) string { return "expires in " + count(n, "day") }
	tests := []struct {
		name string
		args []string
		want [][]string // columns of each row, without the header
	}{
		{
			name: "all",
			want: fields(
				"acme|ssh-ed25519|"+testEdFingerprint+"|acme laptop|"+soonDate+"|"+expiresIn(soonDays),
				"acme|ssh-rsa 2048|"+testRSA2048Fingerprint+"|acme 2048|2020-01-31|EXPIRED",
				"acme|ssh-ed25519|"+testSpareFingerprint+"|acme spare|never|ok",
				"globex|ssh-ed25519|"+testGlobexFingerprint+"|globex sftp|"+later.Format(time.RFC3339)+"|ok",
			),
		},
		{
			name: "expiring within the default window",
			args: []string{"--expiring"},
			want: fields(
				"acme|ssh-ed25519|"+testEdFingerprint+"|acme laptop|"+soonDate+"|"+expiresIn(soonDays),
				"acme|ssh-rsa 2048|"+testRSA2048Fingerprint+"|acme 2048|2020-01-31|EXPIRED",
			),
		},
		{
			name: "expiring within 90 days",
			args: []string{"--expiring", "--within", "90d"},
			want: fields(
				"acme|ssh-ed25519|"+testEdFingerprint+"|acme laptop|"+soonDate+"|"+expiresIn(soonDays),
				"acme|ssh-rsa 2048|"+testRSA2048Fingerprint+"|acme 2048|2020-01-31|EXPIRED",
				"globex|ssh-ed25519|"+testGlobexFingerprint+"|globex sftp|"+later.Format(time.RFC3339)+"|"+expiresIn(config.DaysLeft(later, time.Now())),
			),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, err := run(t, append([]string{"keys", "list", "--config", cfg}, tt.args...)...)
			if err != nil {
				t.Fatalf("keys list: %v\n%s", err, stderr)
			}
			lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
			if got := strings.Fields(lines[0]); !reflect.DeepEqual(got, []string{"SUPPLIER", "TYPE", "FINGERPRINT", "COMMENT", "EXPIRES", "STATUS"}) {
				t.Errorf("header %q", lines[0])
			}
			// Columns are separated by at least two spaces; values have at most one.
			var got [][]string
			for _, l := range lines[1:] {
				var cols []string
				for _, c := range strings.Split(l, "  ") {
					if c = strings.TrimSpace(c); c != "" {
						cols = append(cols, c)
					}
				}
				got = append(got, cols)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("rows:\n%s\nwant:\n%q", stdout, tt.want)
			}
		})
	}
}

func TestKeysListJSON(t *testing.T) {
	t.Parallel()
	cfg, soon, _ := keysTree(t)
	stdout, stderr, err := run(t, "keys", "list", "--config", cfg, "--json", "--expiring")
	if err != nil {
		t.Fatalf("keys list: %v\n%s", err, stderr)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(stdout), &rows); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if len(rows) != 2 {
		t.Fatalf("%d rows, want 2:\n%s", len(rows), stdout)
	}
	want := map[string]any{
		"supplier":    "acme",
		"type":        "ssh-ed25519",
		"bits":        0.0,
		"fingerprint": testEdFingerprint,
		"comment":     "acme laptop",
		"expires":     soon.Format(time.RFC3339),
		"expiry_date": soon.AddDate(0, 0, -1).Format(time.DateOnly),
		"days_left":   float64(config.DaysLeft(soon, time.Now())),
		"status":      "expiring",
	}
	if !reflect.DeepEqual(rows[0], want) {
		t.Errorf("row 0:\n got %v\nwant %v", rows[0], want)
	}
	if rows[1]["status"] != "expired" || rows[1]["bits"] != 2048.0 || rows[1]["days_left"] != 0.0 {
		t.Errorf("row 1: %v", rows[1])
	}

	// A key that never expires has null expiry fields.
	stdout, _, err = run(t, "keys", "list", "--config", cfg, "--json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(stdout), &rows); err != nil || len(rows) != 4 {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if rows[2]["expires"] != nil || rows[2]["days_left"] != nil || rows[2]["status"] != "ok" || rows[2]["expiry_date"] != "" {
		t.Errorf("key without expiry: %v", rows[2])
	}
}

func TestKeysListErrors(t *testing.T) {
	t.Parallel()
	cfg, _, _ := keysTree(t)
	if _, _, err := run(t, "keys", "list", "--config", cfg, "--within", "2w"); err == nil || !strings.Contains(err.Error(), "--within") {
		t.Errorf("bad --within: %v", err)
	}
	if _, _, err := run(t, "keys", "list", "--config", filepath.Join(t.TempDir(), "airlock.yaml")); err == nil {
		t.Error("missing config: no error")
	}
	empty := writeTree(t, map[string]string{"airlock.yaml": "node: n\n", "suppliers/.keep": ""})
	stdout, _, err := run(t, "keys", "list", "--config", filepath.Join(empty, "airlock.yaml"), "--json")
	if err != nil || strings.TrimSpace(stdout) != "[]" {
		t.Errorf("no suppliers: %q, %v", stdout, err)
	}
}
