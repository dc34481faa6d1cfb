package sftpd

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/airlock-gw/airlock/internal/config"
)

// loadSuppliers writes supplier files (name → YAML) and loads them.
func loadSuppliers(t *testing.T, files map[string]string) *config.Suppliers {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		writeFile(t, filepath.Join(dir, "suppliers", name+".yaml"), body)
	}
	set, err := config.LoadSuppliers(filepath.Join(dir, "suppliers"), dir)
	if err != nil {
		t.Fatalf("load suppliers: %v", err)
	}
	return set
}

func supplierYAML(name, ips string, keys ...string) string {
	return fmt.Sprintf("name: %s\nemail: data@%s.example\nallowed_ips: %s\nssh_keys: [%s]\ndestination:\n  url: \"/srv/%s\"\n",
		name, name, ips, strings.Join(keys, ", "), name)
}

func authorizedLine(k ssh.Signer) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k.PublicKey())))
}

func TestRevocation(t *testing.T) {
	t.Parallel()
	key, other := newClientKey(t), newClientKey(t)
	line := fmt.Sprintf("%q", authorizedLine(key))
	expiring := fmt.Sprintf("{key: %q, expires: \"2027-01-01T12:00:00Z\"}", authorizedLine(key))
	before, after := time.Date(2027, 1, 1, 11, 59, 0, 0, time.UTC), time.Date(2027, 1, 1, 12, 0, 0, 0, time.UTC)
	conn := &liveConn{supplier: "acme", key: key.PublicKey(), fingerprint: ssh.FingerprintSHA256(key.PublicKey()), ip: netip.MustParseAddr("192.0.2.7")}
	for _, tc := range []struct {
		name  string
		files map[string]string
		now   time.Time
		want  string // "" for still allowed
	}{
		{"unchanged", map[string]string{"acme": supplierYAML("acme", `["192.0.2.0/24"]`, line)}, after, ""},
		{"another key added", map[string]string{"acme": supplierYAML("acme", `["192.0.2.0/24"]`, line, fmt.Sprintf("%q", authorizedLine(other)))}, after, ""},
		{"supplier file deleted", map[string]string{"globex": supplierYAML("globex", `["192.0.2.0/24"]`, line)}, after, revokedSupplierRemoved},
		{"address removed", map[string]string{"acme": supplierYAML("acme", `["198.51.100.0/24"]`, line)}, after, revokedIPNotAllowed},
		{"key replaced", map[string]string{"acme": supplierYAML("acme", `["192.0.2.0/24"]`, fmt.Sprintf("%q", authorizedLine(other)))}, after, revokedKey},
		{"key not yet expired", map[string]string{"acme": supplierYAML("acme", `["192.0.2.0/24"]`, expiring)}, before, ""},
		{"key expired", map[string]string{"acme": supplierYAML("acme", `["192.0.2.0/24"]`, expiring)}, after, revokedKeyExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reason, ok := revocation(conn, loadSuppliers(t, tc.files), tc.now)
			if ok != (tc.want == "") || reason != tc.want {
				t.Fatalf("revocation = %q, %v; want %q", reason, ok, tc.want)
			}
		})
	}
}

// TestRevalidateClosesRevoked: of two live connections, the one whose
// supplier the new set drops is closed and audited, the other goes on.
func TestRevalidateClosesRevoked(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	revoked, kept := ts.sftpClient(t, uploader), ts.sftpClient(t, egresser)
	if _, err := revoked.Getwd(); err != nil {
		t.Fatal(err)
	}
	set := loadSuppliers(t, map[string]string{egresser: supplierYAML(egresser, `["127.0.0.0/8"]`,
		fmt.Sprintf("%q", authorizedLine(ts.keys[egresser])))})
	if n := ts.srv.Revalidate(t.Context(), set); n != 1 {
		t.Fatalf("Revalidate closed %d connections, want 1", n)
	}
	if n := ts.srv.Revalidate(t.Context(), set); n != 0 {
		t.Fatalf("a second Revalidate closed %d connections again, want 0", n)
	}
	eventually(t, "the revoked session to end", func() bool {
		_, err := revoked.Getwd()
		return err != nil
	})
	if _, err := kept.Getwd(); err != nil {
		t.Fatalf("the other supplier's session ended: %v", err)
	}
	evs := ts.events(t, "session.revoked")
	if len(evs) != 1 || evs[0].Detail["supplier"] != uploader || evs[0].Detail["reason"] != revokedSupplierRemoved {
		t.Fatalf("session.revoked events: %+v", evs)
	}
}
