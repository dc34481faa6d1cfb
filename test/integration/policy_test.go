package integration

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/testpeer"
)

// TestPullPolicyApplied: `airlock policy dataset NAME --apply` puts the
// generated pull bucket policy on a real S3 server that evaluates bucket
// policies by IAM ARN (versitygw with its standalone IAM service), after
// which the reader in pull_arns may read and list but not write, and not
// at all without TLS, the dataset's user may write, and another account
// of the same server is refused. Before the policy, the reader is refused too: what allows it
// is the policy airlock applied.
func TestPullPolicyApplied(t *testing.T) {
	t.Parallel()
	s3 := testpeer.StartVersityIAM(t)
	root := s3.Root()
	reader, writer, other := s3.CreateUser("reader"), s3.CreateUser("writer"), s3.CreateUser("other")
	const bucket = "shared-extract"
	if b, status := s3.S3(http.MethodPut, bucket, "", nil, root); status != http.StatusOK {
		t.Fatalf("create bucket: %d %s", status, b)
	}
	if b, status := s3.S3(http.MethodPut, bucket, "extract.csv", []byte("a,b\n1,2\n"), root); status != http.StatusOK {
		t.Fatalf("put object: %d %s", status, b)
	}
	if _, status := s3.S3(http.MethodGet, bucket, "extract.csv", nil, reader); status != http.StatusForbidden {
		t.Fatalf("before the policy the reader got %d, want 403", status)
	}

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "suppliers", ".keep"), "")
	writeFile(t, filepath.Join(dir, "datasets", "shared_extract.yaml"), `name: shared_extract
paperwork: "https://wiki.example/dsa/shared_extract"
users: ["writer"]
pull_arns: ["`+reader.ARN+`"]
pull_bucket: "`+s3.URL(bucket)+`"
`)
	// versitygw refuses the s3:TlsVersion key, and its listener refuses
	// TLS below 1.2 itself (Go's default), so the statement is left out.
	writeAirlockYAML := func(denyTLS string) string {
		cfg := filepath.Join(dir, "airlock.yaml")
		writeFile(t, cfg, "node: test\npolicy:\n  user_arn_template: \"arn:aws:iam::000000000000:user/{user}\"\n"+denyTLS)
		return cfg
	}
	policyApply := func(cfg string) (string, error) {
		cmd := exec.Command(airlockBin, "policy", "dataset", "shared_extract", "--apply", "--config", cfg)
		cmd.Env = append(os.Environ(), s3.Env()...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := policyApply(writeAirlockYAML(""))
	if err == nil || !strings.Contains(out, "Policy has an invalid condition key") {
		t.Fatalf("with the s3:TlsVersion statement versitygw should refuse the policy: %v\n%s", err, out)
	}
	cfg := writeAirlockYAML("  deny_tls_below: none\n")
	if out, err := policyApply(cfg); err != nil || !strings.Contains(out, "applied the bucket policy of "+bucket) {
		t.Fatalf("policy --apply: %v\n%s", err, out)
	}

	tests := []struct {
		who    string
		acc    testpeer.VersityAccount
		method string
		key    string
		want   int
	}{
		{"reader reads", reader, http.MethodGet, "extract.csv", http.StatusOK},
		{"reader lists", reader, http.MethodGet, "", http.StatusOK},
		{"reader may not write", reader, http.MethodPut, "from-reader.csv", http.StatusForbidden},
		{"reader may not delete", reader, http.MethodDelete, "extract.csv", http.StatusForbidden},
		{"writer writes", writer, http.MethodPut, "from-writer.csv", http.StatusOK},
		{"writer reads", writer, http.MethodGet, "extract.csv", http.StatusOK},
		{"another account may not read", other, http.MethodGet, "extract.csv", http.StatusForbidden},
		{"another account may not list", other, http.MethodGet, "", http.StatusForbidden},
	}
	for _, tt := range tests {
		var body []byte
		if tt.method == http.MethodPut {
			body = []byte("x\n")
		}
		if b, status := s3.S3(tt.method, bucket, tt.key, body, tt.acc); status != tt.want {
			t.Errorf("%s: %d, want %d: %s", tt.who, status, tt.want, b)
		}
	}
	// The same reader, without TLS: DenyInsecureTransport.
	if _, status := s3.S3Plain(http.MethodGet, bucket, "extract.csv", nil, reader); status != http.StatusForbidden {
		t.Errorf("reader in clear: %d, want 403", status)
	}

	l, err := ledger.Open(t.Context(), "sqlite:"+filepath.Join(dir, "state", "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	evs, err := l.Events(t.Context(), "", 100)
	if err != nil {
		t.Fatal(err)
	}
	applied := 0
	for _, ev := range evs {
		if ev.Kind == "policy.applied" && ev.Detail["bucket"] == bucket && ev.Detail["subject"] == "dataset shared_extract" {
			applied++
		}
	}
	if applied != 1 {
		t.Errorf("%d policy.applied events, want 1: %+v", applied, evs)
	}
	if out, err := exec.Command(airlockBin, "audit", "verify", "--config", cfg).CombinedOutput(); err != nil {
		t.Errorf("audit verify: %v\n%s", err, out)
	}
}

// TestDatasetReload: a running gateway picks up a datasets directory that
// appears after it started, refuses a broken dataset file (keeping the
// datasets in force), and reloads the datasets on SIGHUP; every reload is
// audited.
func TestDatasetReload(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gatewayOpts{})
	writeFile(t, filepath.Join(g.dir, "suppliers", ".keep"), "")
	g.start()
	datasets := filepath.Join(g.dir, "datasets") // absent at start: no datasets

	writeFile(t, filepath.Join(datasets, "new_project.yaml"),
		"name: new_project\npaperwork: \"https://wiki.example/dpia\"\nusers: [\"alpha_user_one\"]\nbucket: target-bucket\n")
	eventually(t, 10*time.Second, "a config.reload event with the new dataset", func() bool {
		_, ok := g.findEvent(0, "config.reload", map[string]string{"datasets": "1"})
		return ok
	})

	after := g.lastSeq()
	writeFile(t, filepath.Join(datasets, "broken.yaml"), "name: broken\npaperwork: \"TODO\"\n")
	eventually(t, 10*time.Second, "the refused reload to be audited", func() bool {
		_, ok := g.findEvent(after, "config.reload", map[string]string{"datasets_dir": datasets, "error": "broken.yaml"})
		return ok
	})
	if !strings.Contains(g.log.String(), "dataset reload refused; keeping the previous configuration") {
		t.Errorf("the refused reload was not logged:\n%s", g.logTail(20))
	}

	// With no file changing, only SIGHUP reloads. Let the watcher's
	// debounce (200 ms) settle first.
	time.Sleep(time.Second)
	after = g.lastSeq()
	if err := g.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "SIGHUP to reload the datasets", func() bool {
		_, ok := g.findEvent(after, "config.reload", map[string]string{"datasets_dir": datasets, "error": "broken.yaml"})
		return ok
	})
}
