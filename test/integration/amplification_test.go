package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/airlock-gw/airlock/internal/sftptest"
)

// auditBytes is the size, as JSON, of the audit events after seq.
func (g *gateway) auditBytes(t *testing.T, after int64) int {
	t.Helper()
	n := 0
	for _, ev := range g.events() {
		if ev.Seq > after {
			b, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			n += len(b)
		}
	}
	return n
}

// TestRequestsCannotAmplifyWrites sends what once made airlock write about
// twenty times what it received: 50 STATs of a 250 KiB path of control
// characters and a login with a 200 KB user name. The audit trail and the
// log must grow by a small fraction of what was sent, nothing may be written
// outside the stores, and another supplier's upload at the same time
// succeeds.
func TestRequestsCannotAmplifyWrites(t *testing.T) {
	t.Parallel()
	other := newClientKey(t)
	g, key := startAcme(t, gatewayOpts{suppliers: []supplierSpec{{name: "globex", keys: []clientKey{other}}}}, supplierSpec{})
	f := newFence(t, g, "acme", "globex")
	seq, logBefore := g.lastSeq(), len(g.log.String())

	var wg sync.WaitGroup
	wg.Go(func() {
		local, sum := randomFile(t, 256<<10)
		g.put(t, "globex", other, map[string]string{"/during.bin": local})
		assertArrived(t, g, "globex", "/during.bin", sum, 256<<10)
	})
	long := "/" + strings.Repeat("\x01", 250<<10)
	r := dialRaw(t, g, "acme", key)
	sent := 0
	for range 50 {
		if code, _ := r.Status(sftptest.FXPStat, long); code == sftptest.FXOK {
			t.Fatal("STAT of a control-character path succeeded")
		}
		sent += len(long)
	}
	user := strings.Repeat("u", 200_000)
	if _, err := sshDial(g, user, key); err == nil {
		t.Fatal("a 200 KB user name logged in")
	}
	sent += len(user)
	wg.Wait()

	grownAudit, grownLog := g.auditBytes(t, seq), len(g.log.String())-logBefore
	t.Logf("sent %d bytes; the audit trail grew by %d, the log by %d", sent, grownAudit, grownLog)
	if limit := sent / 20; grownAudit > limit || grownLog > limit {
		t.Errorf("sent %d bytes; the audit trail grew by %d and the log by %d, want each under %d", sent, grownAudit, grownLog, limit)
	}
	f.check(t)
	g.auditVerifies(t)
}

// TestRefusedSSHRequestsAudited: exec, shell, port forwarding and a
// forwarding channel are refused, each with an audit event.
func TestRefusedSSHRequestsAudited(t *testing.T) {
	t.Parallel()
	g, key := startAcme(t, gatewayOpts{}, supplierSpec{})
	after := g.lastSeq()
	conn, err := sshDial(g, "acme", key)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, do := range []func(s *ssh.Session) error{
		func(s *ssh.Session) error { return s.Run("id") },
		func(s *ssh.Session) error { return s.Shell() },
	} {
		s, err := conn.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		if err := do(s); err == nil {
			t.Error("exec or shell accepted")
		}
		s.Close()
	}
	if ok, _, _ := conn.SendRequest("tcpip-forward", true, ssh.Marshal(struct {
		Addr string
		Port uint32
	}{"127.0.0.1", 0})); ok {
		t.Error("remote port forwarding accepted")
	}
	if _, err := conn.Dial("tcp", g.httpAddr); err == nil {
		t.Error("a direct-tcpip channel was opened")
	}
	for _, want := range []map[string]string{
		{"op": "session-request", "type": "exec"},
		{"op": "session-request", "type": "shell"},
		{"op": "global-request", "type": "tcpip-forward"},
		{"op": "channel", "type": "direct-tcpip"},
	} {
		eventually(t, 10*time.Second, fmt.Sprintf("a request.refused event %v", want), func() bool {
			_, ok := g.findEvent(after, "request.refused", want)
			return ok
		})
	}
}

// TestRiskyReloadWarns: a reload that opens a supplier to every address
// is kept (it is legal) but logged and audited as a warning.
func TestRiskyReloadWarns(t *testing.T) {
	t.Parallel()
	g, key := startAcme(t, gatewayOpts{}, supplierSpec{})
	after := g.lastSeq()
	p := filepath.Join(g.dir, "suppliers", "acme.yaml")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, strings.Replace(string(b), `"127.0.0.1/32"`, `"0.0.0.0/0"`, 1))
	if err := g.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "a config.reload event with the warning", func() bool {
		_, ok := g.findEvent(after, "config.reload", map[string]string{"warnings": "open to every IPv4 address"})
		return ok
	})
	// The log reaches the test through a pipe, maybe after the event.
	eventually(t, 10*time.Second, "the warning in the log", func() bool {
		return strings.Contains(g.log.String(), "risky configuration")
	})
	if out, err := g.sftpBatch("acme", key, "pwd\n"); err != nil {
		t.Errorf("login after the reload: %v\n%s", err, out)
	}
}

// TestDirectoriesOutliveRestart: a directory made with mkdir is audited
// and still there after airlock restarts.
func TestDirectoriesOutliveRestart(t *testing.T) {
	t.Parallel()
	g, key := startAcme(t, gatewayOpts{}, supplierSpec{})
	if out, err := g.sftpBatch("acme", key, "mkdir /2026\n"); err != nil {
		t.Fatalf("mkdir: %v\n%s", err, out)
	}
	if _, ok := g.findEvent(0, "dir.create", map[string]string{"path": "/2026"}); !ok {
		t.Error("no dir.create event")
	}
	g.stop()
	g.start()
	if out, err := g.sftpBatch("acme", key, "cd /2026\n"); err != nil {
		t.Errorf("cd into the directory after a restart: %v\n%s", err, out)
	}
	g.auditVerifies(t)
}
