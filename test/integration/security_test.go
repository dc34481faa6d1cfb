package integration

import (
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/testpeer"
)

// TestSSHAudit: the real ssh-audit finds nothing to fail in either
// algorithm profile (sftp.algorithms); the warnings go to the log.
func TestSSHAudit(t *testing.T) {
	t.Parallel()
	audit := testpeer.Require(t, "ssh-audit")
	for _, profile := range []string{"modern", "compatible"} {
		t.Run(profile, func(t *testing.T) {
			t.Parallel()
			g := newGateway(t, gatewayOpts{sftpExtra: "  algorithms: " + profile + "\n",
				suppliers: []supplierSpec{{name: "acme", keys: []clientKey{newClientKey(t)}}}})
			g.start()
			out, _ := exec.Command(audit, "--no-colors", "-p", g.port(), "127.0.0.1").CombinedOutput()
			report := string(out)
			if !strings.Contains(report, "(gen) banner: SSH-2.0-airlock") {
				t.Fatalf("ssh-audit did not reach airlock:\n%s", report)
			}
			// The profiles differ: compatible offers aes128-ctr, modern not.
			if offered := strings.Contains(report, "(enc) aes128-ctr"); offered != (profile == "compatible") {
				t.Errorf("aes128-ctr offered: %v", offered)
			}
			for _, line := range strings.Split(report, "\n") {
				if strings.Contains(line, "[fail]") {
					t.Errorf("ssh-audit: %s", line)
				}
				if strings.Contains(line, "[warn]") {
					t.Logf("ssh-audit: %s", line)
				}
			}
			if t.Failed() {
				t.Logf("full report:\n%s", report)
			}
		})
	}
}

// TestBruteForceBan: enough failed logins ban the address for a while; a
// correct key works again once the ban ends.
func TestBruteForceBan(t *testing.T) {
	t.Parallel()
	good, bad := newClientKey(t), newClientKey(t)
	g := newGateway(t, gatewayOpts{
		sftpExtra: "  ban:\n    threshold: 20\n    window: \"1m\"\n    duration: \"4s\"\n",
		suppliers: []supplierSpec{{name: "acme", keys: []clientKey{good}}},
	})
	g.start()

	for i := range 20 {
		if out, err := g.sftpBatch("acme", bad, "ls\n"); err == nil {
			t.Fatalf("attempt %d with a wrong key logged in:\n%s", i, out)
		}
	}
	banned := time.Now()
	if out, err := g.sftpBatch("acme", good, "ls\n"); err == nil {
		t.Fatalf("the banned address logged in with the right key:\n%s", out)
	}
	// Written with the next batch of strikes, within 250 ms.
	eventually(t, 5*time.Second, "the ip.banned audit event", func() bool {
		_, ok := g.findEvent(0, "ip.banned", nil)
		return ok
	})
	if got := g.metric(`airlock_sftp_connections_refused_total{reason="banned"}`); got < 1 {
		t.Fatalf("refused-connection metric = %v", got)
	}
	time.Sleep(time.Until(banned.Add(4 * time.Second)))
	if out, err := g.sftpBatch("acme", good, "ls\n"); err != nil {
		t.Fatalf("the right key after the ban: %v\n%s", err, out)
	}
}

// TestSlowHandshakeDropped: a client that connects and says nothing is
// dropped at the handshake deadline.
func TestSlowHandshakeDropped(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gatewayOpts{
		sftpExtra: "  handshake_timeout: \"1s\"\n",
		suppliers: []supplierSpec{{name: "acme", keys: []clientKey{newClientKey(t)}}},
	})
	g.start()
	c, err := net.Dial("tcp", g.sftpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 256)
	for {
		if _, err := c.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("the silent connection was still open after 10s")
			}
			break
		}
	}
	if held := time.Since(start); held > 5*time.Second {
		t.Fatalf("the silent connection was held for %s", held)
	}
	eventually(t, 2*time.Second, "the timeout to be counted", func() bool {
		return g.metric(`airlock_sftp_connections_refused_total{reason="handshake-timeout"}`) >= 1
	})
}
