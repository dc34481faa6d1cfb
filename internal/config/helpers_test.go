package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Real public keys, generated once with ssh-keygen (the private halves were
// discarded). Fingerprints are as printed by `ssh-keygen -lf`.
const (
	edKey         = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDr5tW0lT06rzWs+t3WxQuXYObh8M7xGzlw1GmLBMTTT acme laptop"
	edFingerprint = "SHA256:sGNdwhbN7Uqr3cR7gCueZHGNSON2kUongZ0ELmR0OA8"

	rsaKey         = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQCbORLRqXv2/1CII75jiiHkTH2UeAJK/3Dc5Nb/d2DiNpRRH/x+aaA5bZ6vTTIuOQXrvvxlNLeuUGEogBxCb+9BUNcclnWLysAvROOrZro4S5i6SV4xFhlSmGPVeMY14Yx8aEteFde25IY7Q3azqJ8imMNfM4JowMq4jKSPUPIApQJ28Eb+fUtgKeUJ2KiAHbCNggsWU3khu8dL4iuYdcr0SJoXHSskNzyGlUIoxwA3QC08LVp6wo/SofwLuC+IRManIOWPpckfdnrBQTBQODXanPe1Tppz4LzQ5+hS2h6iDhUx7X4d9zZSi56Q4IJcJ9QRoDwi8WkPhL5thY6Z9o3sQkUEzXBCUAaaCt/rPjfuKC5z5Omj6R5+oqOLenYENN2DhyUdVD3obT1ehYRUGc0YzHNqcYa+gRuETY3O7ViEyMhyWFJGlPSX6+KiURgvg7Jt2afxj1VydJ7nAjaj6vimitDvjtIZoJV2yu33zytsHfvn67H3K71P5CdCx+ZBbY0= acme build server"
	rsaFingerprint = "SHA256:8pOHSIGkQB3nUZ00TcX41zAIAfxnBveHlBkiwKbntdk"

	globexKey         = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGfJMeGP/K4Y+8u0hbcapawjKfwacnR+Rnp5joIbtOqk globex sftp"
	globexFingerprint = "SHA256:wLUbSoSPPHFbIeDyz6O3+a6Xjs52LxaDLosMRKIWKy0"

	rsa1024Key = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDG4+vAyWJjzBPnK3/3WzAM89sLY879PDEIsf20X+P152Iq16wfabKcgpCbqjJuCtZHNmaynePj3mSTkOw6AoO1a0yUMrGAFahLdJIjjz1qOd7osY4c+fwG1zpd65E3il26CNF7CZEPvp0ApRVYU+Qi+GqnrQRNaRH8pkKzCFvMaQ== old"
	ecdsaKey   = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBBKf+s/DPE6vXkoEVdrj7Jdifxh9VPngrIxZCy+WdSAp1UtBq1JpIj8XRCjUOEF0tWT+m3L7MldN1D+rocNeHHg= ecdsa"
)

// acmeYAML is a valid supplier file; tests derive broken ones with edit.
// Lines: 1 name, 2 email, 3 allowed_ips, 4 ssh_keys, 5 destination, 6 url.
const acmeYAML = `name: acme
email: data@acme.example
allowed_ips: ["203.0.113.0/24"]
ssh_keys: ["` + edKey + `"]
destination:
  url: s3://land/acme
`

const globexYAML = `name: globex
email: sftp@globex.example
allowed_ips: ["192.0.2.10"]
ssh_keys: ["` + globexKey + `"]
destination:
  url: s3://land/globex
`

// edit returns s with old replaced by new, failing loudly if old is absent,
// so that a fixture typo cannot turn a test into a no-op.
func edit(s, old, new string) string {
	if !strings.Contains(s, old) {
		panic("edit: " + old + " not in fixture")
	}
	return strings.Replace(s, old, new, 1)
}

// writeTree creates files (slash-separated paths relative to a new
// temporary directory) and returns the directory.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		writeFile(t, filepath.Join(dir, filepath.FromSlash(name)), content)
	}
	return dir
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// messages returns the lines of err, which must be Errors, with dir/
// removed from file names so that expectations read like the tree.
func messages(t *testing.T, err error, dir string) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T, want Errors: %v", err, err)
	}
	var out []string
	for _, e := range errs {
		line := e.Error()
		if dir != "" {
			line = strings.ReplaceAll(line, dir+string(filepath.Separator), "")
		}
		out = append(out, line)
	}
	return out
}

func diffLines(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n got: %s\nwant: %s", strings.Join(got, "\n      "), strings.Join(want, "\n      "))
	}
}
