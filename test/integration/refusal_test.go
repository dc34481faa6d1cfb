package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-gw/airlock/internal/ledger"
)

// TestLoginRefusals: every refused login is refused for the client and
// audited with its reason.
func TestLoginRefusals(t *testing.T) {
	t.Parallel()
	acmeKey, strangerKey, farKey := newClientKey(t), newClientKey(t), newClientKey(t)
	g := newGateway(t, gatewayOpts{suppliers: []supplierSpec{
		{name: "acme", keys: []clientKey{acmeKey}},
		{name: "faraway", keys: []clientKey{farKey}, allowedIPs: []string{"192.0.2.0/24"}},
	}})
	g.start()

	tests := []struct {
		name   string
		user   string
		key    clientKey
		reason string
	}{
		{"wrong key", "acme", strangerKey, "key-not-authorized"},
		{"unknown user", "nobody", acmeKey, "unknown-user"},
		{"ip not allowed", "faraway", farKey, "ip-not-allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := g.lastSeq()
			out, err := g.sftpBatch(tt.user, tt.key, "ls\n")
			if err == nil {
				t.Fatalf("login as %s succeeded:\n%s", tt.user, out)
			}
			if !strings.Contains(out, "Permission denied") {
				t.Fatalf("client output does not say permission denied:\n%s", out)
			}
			ev, ok := g.findEvent(before, "auth.fail", map[string]string{"reason": tt.reason})
			if !ok || ev.Actor != tt.user || ev.RemoteIP != "127.0.0.1" {
				t.Fatalf("no auth.fail event for %s with reason %s (found %+v)", tt.user, tt.reason, ev)
			}
		})
	}
	if got := g.metric(`airlock_sftp_auth_failures_total{reason="ip-not-allowed"}`); got < 1 {
		t.Fatalf("auth failure metric = %v", got)
	}
}

// TestRequestRefusals: bad names, escapes and reads of other data are
// refused with a reason, audited, and leave nothing behind.
func TestRequestRefusals(t *testing.T) {
	t.Parallel()
	aliceKey, bobKey := newClientKey(t), newClientKey(t)
	// alice's file stays on its way (held), so that what a supplier may do
	// with a received file, and another with it, is what is tried.
	g := newGateway(t, gatewayOpts{
		maxFileSize: "1MiB",
		suppliers: []supplierSpec{
			{name: "alice", keys: []clientKey{aliceKey}, held: true},
			{name: "bob", keys: []clientKey{bobKey}},
		},
	})
	g.start()
	atLimit, atLimitSHA := randomFile(t, 1<<20)
	overLimit, _ := randomFile(t, 1<<20+1)

	if out, err := g.sftpBatch("alice", aliceKey, fmt.Sprintf("put %s secret.csv\n", atLimit)); err != nil {
		t.Fatalf("upload exactly at the limit: %v\n%s", err, out)
	}
	assertArrived(t, g, "alice", "/secret.csv", atLimitSHA, 1<<20)

	tests := []struct {
		name   string
		user   string
		key    clientKey
		cmd    string
		reason string // of the request.refused audit event
	}{
		{"name with a space", "bob", bobKey, fmt.Sprintf(`put %s "a b.csv"`, atLimit), "name-policy"},
		{"parent directory", "bob", bobKey, fmt.Sprintf("put %s ../x", atLimit), "escape"},
		{"deep parent directory", "bob", bobKey, fmt.Sprintf("put %s ../../../../etc/passwd", atLimit), "escape"},
		{"another supplier's file via ..", "bob", bobKey, "get ../alice/secret.csv " + filepath.Join(t.TempDir(), "stolen"), "escape"},
		{"reading back an upload", "alice", aliceKey, "get secret.csv " + filepath.Join(t.TempDir(), "back"), "permission"},
		{"removing a received file", "alice", aliceKey, "rm secret.csv", "permission"},
		{"symlink", "alice", aliceKey, "symlink secret.csv link.csv", "unsupported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := g.lastSeq()
			out, err := g.sftpBatch(tt.user, tt.key, tt.cmd+"\n")
			if err == nil {
				t.Fatalf("%q succeeded:\n%s", tt.cmd, out)
			}
			if _, ok := g.findEvent(before, "request.refused", map[string]string{"reason": tt.reason}); !ok {
				t.Fatalf("no request.refused event with reason %s", tt.reason)
			}
		})
	}

	t.Run("absolute path outside the home", func(t *testing.T) {
		// Inside the chroot /etc does not exist: the upload has nowhere to go.
		out, err := g.sftpBatch("bob", bobKey, fmt.Sprintf("put %s /etc/passwd\n", atLimit))
		if err == nil || !strings.Contains(out, "No such file") {
			t.Fatalf("put /etc/passwd: %v\n%s", err, out)
		}
		if _, err := os.Stat(filepath.Join(g.dir, "etc")); !os.IsNotExist(err) {
			t.Fatal("an etc directory appeared in the tree")
		}
	})
	t.Run("another supplier's file is not in the home", func(t *testing.T) {
		out, err := g.sftpBatch("bob", bobKey, "ls -l /\n")
		if err != nil || strings.Contains(out, "secret.csv") {
			t.Fatalf("bob's listing shows alice's file or fails: %v\n%s", err, out)
		}
	})
	t.Run("one byte over the maximum file size", func(t *testing.T) {
		before := g.lastSeq()
		out, err := g.sftpBatch("bob", bobKey, fmt.Sprintf("put %s big.csv\n", overLimit))
		if err == nil {
			t.Fatalf("upload over the limit succeeded:\n%s", out)
		}
		tr, ok := transferAt(g.transfers(), "bob", "/big.csv")
		if !ok || tr.State != ledger.Failed || !strings.Contains(tr.Error, "maximum file size") {
			t.Fatalf("transfer of big.csv: %+v", tr)
		}
		if _, err := os.Stat(filepath.Join(g.landing, tr.LandingKey)); !os.IsNotExist(err) {
			t.Fatalf("bytes of the refused upload landed: %v", err)
		}
		if _, ok := g.findEvent(before, "upload.fail", map[string]string{"reason": "too-large"}); !ok {
			t.Fatal("no upload.fail event with reason too-large")
		}
	})

	// Only the one good upload landed; nothing of the refused ones.
	if files := landedFiles(t, g.landing); len(files) != 1 {
		t.Fatalf("landing holds %d files, want 1: %v", len(files), files)
	}
	if out, errOut, err := g.airlock("audit", "verify"); err != nil {
		t.Fatalf("audit verify: %v\n%s%s", err, out, errOut)
	}
}
