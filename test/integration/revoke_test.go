package integration

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/sftp"

	"github.com/airlock-gw/airlock/internal/ledger"
)

// slowUpload writes to p on c, 32 KiB every 50 ms, until a write fails; the
// error arrives on the returned channel.
func slowUpload(t *testing.T, c *sftp.Client, p string) <-chan error {
	t.Helper()
	f, err := c.Create(p)
	if err != nil {
		t.Fatalf("create %s: %v", p, err)
	}
	done := make(chan error, 1)
	go func() {
		chunk := make([]byte, 32<<10)
		_, _ = rand.Read(chunk)
		for {
			if _, err := f.Write(chunk); err != nil {
				done <- err
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return done
}

// TestRevokeLiveSession: a reload that replaces a supplier's key, removes
// its address from allowed_ips or deletes its file, and a key that expires,
// close the session using it within seconds, audited; the upload in flight
// on it ends failed and is never delivered.
func TestRevokeLiveSession(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		expires bool // the key expires 25s after the start; no reload
		change  func(t *testing.T, file string, key, next clientKey)
		reason  string
		within  time.Duration // from the change to the session's end
	}{
		{"key replaced", false, func(t *testing.T, file string, key, next clientKey) {
			rewrite(t, file, key.authorized, next.authorized)
		}, "key-revoked", 5 * time.Second},
		{"address removed", false, func(t *testing.T, file string, _, _ clientKey) {
			rewrite(t, file, `"127.0.0.1/32"`, `"192.0.2.0/24"`)
		}, "ip-not-allowed", 5 * time.Second},
		{"supplier file deleted", false, func(t *testing.T, file string, _, _ clientKey) {
			if err := os.Remove(file); err != nil {
				t.Fatal(err)
			}
		}, "supplier-removed", 5 * time.Second},
		// Checked every 10s without a reload.
		{"key expires", true, nil, "key-expired", 15 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			key, next := newClientKey(t), newClientKey(t)
			expiry := time.Now().Add(25 * time.Second)
			if tc.expires {
				key.expires = expiry.UTC().Format(time.RFC3339)
			}
			g := newGateway(t, gatewayOpts{suppliers: []supplierSpec{{name: "acme", keys: []clientKey{key}}}})
			g.start()
			c, _ := dialSFTP(t, g, "acme", key)
			written := slowUpload(t, c, "/slow.bin")
			g.waitTransfer(t, "acme", "/slow.bin", 10*time.Second, "the upload to be recorded as receiving",
				func(tr ledger.Transfer) bool { return tr.State == ledger.Receiving })

			changed := expiry
			if !tc.expires {
				changed = time.Now()
				tc.change(t, filepath.Join(g.dir, "suppliers", "acme.yaml"), key, next)
				if err := g.proc.Signal(syscall.SIGHUP); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case err := <-written:
				t.Logf("the upload's writes failed %s after the change: %v", time.Since(changed).Round(time.Millisecond), err)
			case <-time.After(time.Until(changed.Add(tc.within))):
				t.Fatalf("the session was still writing %s after the change", tc.within)
			}
			ev := g.waitEvent(t, 0, "session.revoked", "", map[string]string{"supplier": "acme", "reason": tc.reason})
			if ev.RemoteIP != "127.0.0.1" || ev.ConnID == "" {
				t.Errorf("session.revoked event: %+v", ev)
			}
			// The watcher reloads too, after SIGHUP: one revocation still.
			time.Sleep(time.Second)
			if n := countEvents(g.events(), "session.revoked"); n != 1 {
				t.Errorf("%d session.revoked events, want 1", n)
			}
			tr := g.waitTransfer(t, "acme", "/slow.bin", 10*time.Second, "the cut upload to fail",
				func(tr ledger.Transfer) bool { return tr.State != ledger.Receiving })
			if tr.State != ledger.Failed || !strings.Contains(tr.Error, "revoked") {
				t.Fatalf("the cut upload is %s (%q), want failed for the revocation", tr.State, tr.Error)
			}
			if _, err := os.Stat(g.destFile("acme", "/slow.bin")); !os.IsNotExist(err) {
				t.Fatalf("the cut upload reached the destination (%v)", err)
			}
			if files := landedFiles(t, g.landing); len(files) > 0 {
				t.Fatalf("the cut upload left %v in landing", files)
			}
			if conn, err := sshDial(g, "acme", key); err == nil {
				conn.Close()
				t.Fatal("the revoked login still works")
			}
			g.auditVerifies(t)
		})
	}
}

// TestIdleSessionWithoutSFTP: a session channel that never starts sftp,
// and its connection, are closed at idle_timeout.
func TestIdleSessionWithoutSFTP(t *testing.T) {
	t.Parallel()
	g, key := startAcme(t, gatewayOpts{sftpExtra: "  idle_timeout: \"3s\"\n  keepalive_interval: \"0\"\n"}, supplierSpec{})
	conn, err := sshDial(g, "acme", key)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sess, err := conn.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ended := make(chan error, 1)
	go func() { ended <- sess.Wait() }()
	closed := make(chan error, 1)
	go func() { closed <- conn.Wait() }()
	for what, ch := range map[string]chan error{"session channel": ended, "connection": closed} {
		select {
		case <-ch:
		case <-time.After(time.Until(start.Add(10 * time.Second))):
			t.Fatalf("the %s without sftp was still open after 10s (idle_timeout 3s)", what)
		}
	}
	if held := time.Since(start); held < 2*time.Second {
		t.Fatalf("closed after %s, before idle_timeout", held)
	}
}

// rewrite replaces old with new in file, which must contain it.
func rewrite(t *testing.T, file, old, new string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s does not contain %q", file, old)
	}
	writeFile(t, file, strings.Replace(string(b), old, new, 1))
}
