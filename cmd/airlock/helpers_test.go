package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// Public keys generated with ssh-keygen for these tests (private halves discarded).
const (
	testEdKey         = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDr5tW0lT06rzWs+t3WxQuXYObh8M7xGzlw1GmLBMTTT acme laptop"
	testEdFingerprint = "SHA256:sGNdwhbN7Uqr3cR7gCueZHGNSON2kUongZ0ELmR0OA8"

	testRSA2048Key         = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCm+xeKV1S7mKl5x9Ts8EH1ikIvKVlzOjh10UjdBZEssLEcdmRSMaMGmlZ3QyMt1GA/xpDYhlwEHw/ocZU1yU6uDoxk6I24yISqvctYbeAI91jxIHCq3suw9usveYyMyZ00qOdR8vZf7GCyIgZn6oQoG7r43dAuKOowKyP8FlCQPVae3npWn69X1ux0JkKa5ipBdVJPmWujuKwnKUHeMrVPvrOz1IJjuMMhFSa+32gxg+Wmr3QvRuzZSmgDqQnPHH7KnKuCmLSJV7UP/ZA70+75XzQaPKONDZE6iX5wJuYyM9hG+ZCn4bs7CPhNcuNe+wwr6xTO6K7XXEflR0TCEfT1 acme 2048"
	testRSA2048Fingerprint = "SHA256:kIBrvygKOVcd4wT39HNE/D5o/Iyo7O00GgkumfqArf4"

	testGlobexKey         = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGfJMeGP/K4Y+8u0hbcapawjKfwacnR+Rnp5joIbtOqk globex sftp"
	testGlobexFingerprint = "SHA256:wLUbSoSPPHFbIeDyz6O3+a6Xjs52LxaDLosMRKIWKy0"

	testSpareKey         = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBQjhbCjzbCYPtSQnqmAPGekhcENiaIkavO9zyiuOWXL acme spare"
	testSpareFingerprint = "SHA256:Jc8mCbAec0InxaJdatVd+VmBAMHNCcM8k2HMGsxnhHc"
)

// writeTree creates files (slash-separated paths relative to a new
// temporary directory) and returns the directory.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// run executes the airlock command line with args and returns what it
// printed on stdout and stderr.
func run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newRootCmd()
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}
