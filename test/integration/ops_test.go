package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestEgressSupplier: an egress supplier uploads under /upload and reads
// the egress store under /download, which is read-only.
func TestEgressSupplier(t *testing.T) {
	t.Parallel()
	key := newClientKey(t)
	egress := t.TempDir()
	writeFile(t, filepath.Join(egress, "reports", "q3.csv"), "quarter,total\nq3,42\n")
	g := newGateway(t, gatewayOpts{suppliers: []supplierSpec{{name: "partner", keys: []clientKey{key}, egress: egress}}})
	g.start()
	src, sha := randomFile(t, smallSize)
	got := filepath.Join(t.TempDir(), "q3.csv")

	out, err := g.sftpBatch("partner", key, fmt.Sprintf("ls /\nput %s /upload/in.bin\nget /download/reports/q3.csv %s\n", src, got))
	if err != nil {
		t.Fatalf("sftp: %v\n%s", err, out)
	}
	if !strings.Contains(out, "upload") || !strings.Contains(out, "download") {
		t.Fatalf("ls / does not show upload and download:\n%s", out)
	}
	assertArrived(t, g, "partner", "/in.bin", sha, smallSize)
	if b, err := os.ReadFile(got); err != nil || string(b) != "quarter,total\nq3,42\n" {
		t.Fatalf("downloaded %q, %v", b, err)
	}

	for _, cmd := range []string{
		fmt.Sprintf("put %s /download/x.bin", src),
		fmt.Sprintf("put %s /x.bin", src),
		"rm /download/reports/q3.csv",
		"mkdir /download/new",
	} {
		if out, err := g.sftpBatch("partner", key, cmd+"\n"); err == nil {
			t.Fatalf("%q succeeded:\n%s", cmd, out)
		}
	}
	if _, err := os.Stat(filepath.Join(egress, "x.bin")); !os.IsNotExist(err) {
		t.Fatal("a write reached the egress store")
	}
}

// TestOpenSSHLargeRequests: OpenSSH's client learns airlock's limits
// (limits@openssh.com) and moves a file in requests of up to 255 KiB each
// way, where it would otherwise send 32 KiB.
func TestOpenSSHLargeRequests(t *testing.T) {
	t.Parallel()
	key := newClientKey(t)
	egress := t.TempDir()
	src, sha := randomFile(t, smallSize)
	content, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(egress, "extract.bin"), string(content))
	g := newGateway(t, gatewayOpts{suppliers: []supplierSpec{{name: "partner", keys: []clientKey{key}, egress: egress}}})
	g.start()
	got := filepath.Join(t.TempDir(), "extract.bin")

	out, err := g.sftpBatch("partner", key, fmt.Sprintf("put %s /upload/in.bin\nget /download/extract.bin %s\n", src, got), "-vvv")
	if err != nil {
		t.Fatalf("sftp: %v\n%s", err, out)
	}
	const most = 256<<10 - 1024 // a request's data, as airlock announces it
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(fmt.Sprintf(`buffer sizes .*; using %d / %d`, most, most)), // upload / download
		regexp.MustCompile(fmt.Sprintf(`SSH2_FXP_WRITE I:\d+ O:\d+ S:%d`, most)),
	} {
		if !want.MatchString(out) {
			t.Fatalf("the client's log does not match %s:\n%s", want, out)
		}
	}
	assertArrived(t, g, "partner", "/in.bin", sha, smallSize)
	if b, err := os.ReadFile(got); err != nil || string(b) != string(content) {
		t.Fatalf("downloaded %d bytes (%v), want the %d of the egress file", len(b), err, len(content))
	}
}

// TestSupplierReload: supplier files are re-read on change and on SIGHUP; a
// broken file keeps the previous set and is logged; sessions survive.
func TestSupplierReload(t *testing.T) {
	t.Parallel()
	acmeKey, newKey := newClientKey(t), newClientKey(t)
	g := newGateway(t, gatewayOpts{suppliers: []supplierSpec{{name: "acme", keys: []clientKey{acmeKey}}}})
	g.start()
	suppliers := filepath.Join(g.dir, "suppliers")

	// A long session stays up across reloads.
	slow, _ := randomFile(t, 60<<20)
	session := g.sftpCommand("acme", acmeKey, fmt.Sprintf("put %s slow.bin\n", slow), "-l", "80000")
	if err := session.Start(); err != nil {
		t.Fatal(err)
	}

	writeFile(t, filepath.Join(suppliers, "newco.yaml"), fmt.Sprintf(
		"name: newco\nemail: d@newco.example\nallowed_ips: [\"127.0.0.1\"]\nssh_keys: [%q]\ndestination:\n  url: \"delivered/newco\"\n", newKey.authorized))
	eventually(t, 10*time.Second, "newco to be able to log in", func() bool {
		_, err := g.sftpBatch("newco", newKey, "ls\n")
		return err == nil
	})

	writeFile(t, filepath.Join(suppliers, "broken.yaml"), "name: broken\nallowed_ips: [\"not-an-ip\"]\n")
	if err := g.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the refused reload to be logged", func() bool {
		return strings.Contains(g.log.String(), "supplier reload refused")
	})
	if out, err := g.sftpBatch("newco", newKey, "ls\n"); err != nil {
		t.Fatalf("a broken file dropped the previous configuration: %v\n%s", err, out)
	}
	if _, ok := g.findEvent(0, "config.reload", map[string]string{"error": "broken.yaml"}); !ok {
		t.Fatal("no config.reload audit event naming the broken file")
	}
	if err := session.Wait(); err != nil {
		t.Fatalf("the session open during the reloads failed: %v", err)
	}
}

// TestHTTPEndpoints: health, readiness and metrics answer.
func TestHTTPEndpoints(t *testing.T) {
	t.Parallel()
	g, key := startAcme(t, gatewayOpts{}, supplierSpec{})
	if out, err := g.sftpBatch("acme", key, "ls\n"); err != nil {
		t.Fatalf("sftp: %v\n%s", err, out)
	}
	if code, _ := g.get(t, "/healthz"); code != 200 {
		t.Fatalf("/healthz: %d", code)
	}
	code, ready := g.readyz(t)
	if code != 200 || !ready.Ready || ready.Checks["database"] != "ok" || ready.Checks["landing"] != "ok" ||
		ready.Checks["quarantine"] != "ok" || ready.Checks["scanner"] != "ok" {
		t.Fatalf("/readyz: %d %+v", code, ready)
	}
	_, metrics := g.get(t, "/metrics")
	for _, want := range []string{"airlock_sftp_sessions", "airlock_sftp_connections_total", "airlock_sftp_upload_bytes_total"} {
		if !strings.Contains(metrics, want) {
			t.Fatalf("/metrics lacks %s", want)
		}
	}
}
