package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/airlock-gw/airlock/internal/testpeer"
)

// clientTree is the tree each client uploads: 30 files, nested four deep,
// from empty to 5 MiB, with sizes on and around the clients' write sizes
// (curl's and paramiko's 32 KiB, OpenSSH's 255 KiB).
var clientTree = func() map[string]int64 {
	tree := map[string]int64{
		"empty.txt":            0,
		"one.txt":              1,
		"a/small.csv":          100,
		"a/chunk-1.bin":        32<<10 - 1,
		"a/chunk.bin":          32 << 10,
		"a/b/chunk-plus-1.bin": 64<<10 + 1,
		"a/b/limit.bin":        255 << 10,
		"a/b/c/mib.bin":        1 << 20,
		"c/three-mib.bin":      3<<20 + 7,
		"c/five-mib.bin":       5 << 20,
		"c/d/deep/empty.dat":   0,
		"c/d/deep/odd.bin":     123457,
	}
	// The rest: assorted sizes below 1 MiB, spread over the directories.
	dirs := []string{"", "a/", "a/b/", "c/d/"}
	for i := len(tree); i < 30; i++ {
		tree[fmt.Sprintf("%sfile-%02d.dat", dirs[i%len(dirs)], i)] = int64(i * i * 997)
	}
	return tree
}()

// writeTree writes clientTree under a fresh directory and returns the
// directory and each file's sha256 by remote path.
func writeTree(t *testing.T) (string, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	sums := make(map[string]string, len(clientTree))
	for rel, sum := range writeFiles(t, dir, clientTree) {
		sums["/"+rel] = sum
	}
	return dir, sums
}

// writeFiles writes each file of tree (slash-separated path → size) under
// root with pseudo-random bytes, and returns each one's sha256 by path.
func writeFiles(t *testing.T, root string, tree map[string]int64) map[string]string {
	t.Helper()
	sums := make(map[string]string, len(tree))
	for rel, size := range tree {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		src := rand.NewChaCha8(sha256.Sum256([]byte(rel))) // each path its own bytes
		if _, err := io.CopyN(io.MultiWriter(f, h), src, size); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		sums[rel] = hex.EncodeToString(h.Sum(nil))
	}
	return sums
}

// assertTreeDelivered checks that every file of the tree was delivered
// once with its bytes, and that nothing else was recorded.
func assertTreeDelivered(t *testing.T, g *gateway, sums map[string]string) {
	t.Helper()
	for p, sha := range sums {
		assertArrived(t, g, "acme", p, sha, clientTree[strings.TrimPrefix(p, "/")])
	}
	var paths []string
	for _, tr := range g.transfers() {
		paths = append(paths, tr.Path)
	}
	slices.Sort(paths)
	want := slices.Sorted(maps.Keys(sums))
	if !slices.Equal(paths, want) {
		t.Fatalf("transfers recorded for %v, want each of %v once", paths, want)
	}
}

// TestCurlUpload: Debian's curl (libcurl with libssh2 1.10, which has no
// AEAD cipher) uploads a tree with the default algorithm profile, over one
// connection, and every file is delivered once.
func TestCurlUpload(t *testing.T) {
	t.Parallel()
	curl := testpeer.Require(t, "curl")
	if out, _ := exec.Command(curl, "--version").Output(); !strings.Contains(string(out), " sftp") {
		t.Fatalf("this curl has no sftp support:\n%s", out)
	}
	g, key := startAcme(t, gatewayOpts{}, supplierSpec{})
	dir, sums := writeTree(t)

	args := []string{"--silent", "--show-error", "--fail-early", "--insecure", "--ftp-create-dirs",
		"--user", "acme:", "--key", key.path, "--pubkey", key.path + ".pub"}
	for _, rel := range slices.Sorted(maps.Keys(clientTree)) {
		args = append(args, "-T", filepath.Join(dir, filepath.FromSlash(rel)),
			fmt.Sprintf("sftp://127.0.0.1:%s/%s", g.port(), rel))
	}
	if out, err := exec.Command(curl, args...).CombinedOutput(); err != nil {
		t.Fatalf("curl: %v\n%s\n%s", err, out, g.logTail(20))
	}
	assertTreeDelivered(t, g, sums)
}

// TestParamikoUpload: Debian's python3-paramiko (2.12, no AEAD cipher)
// uploads a tree with put() (pipelined writes) from three SFTP sessions
// at once on one connection, with the default algorithm profile, and
// every file is delivered once.
func TestParamikoUpload(t *testing.T) {
	t.Parallel()
	python := requireParamiko(t)
	g, key := startAcme(t, gatewayOpts{}, supplierSpec{})
	dir, sums := writeTree(t)

	// put() stats each file after closing it, to confirm its size: a
	// delivered file stays in the supplier's view for that.
	out, err := exec.Command(python, "testdata/paramiko_upload.py", "127.0.0.1", g.port(), "acme", key.path, dir, "3", "yes").CombinedOutput()
	if err != nil {
		t.Fatalf("paramiko: %v\n%s\n%s", err, out, g.logTail(20))
	}
	t.Logf("paramiko: %s", out)
	assertTreeDelivered(t, g, sums)
}

// requireParamiko returns a Python that imports paramiko: Debian's
// /usr/bin/python3 (python3-paramiko) first, since a python3 earlier in
// PATH (a virtualenv, pyenv) may not see Debian's packages.
func requireParamiko(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import paramiko").Run() == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("python3-paramiko is required but not installed (make peers installs it)")
	}
	t.Skip("python3-paramiko not installed; run make peers (with CI=true this fails)")
	return ""
}

// TestCompatibleKeepsAEAD: the compatible profile costs a client that has
// AEAD ciphers nothing, since the client's order picks the cipher: OpenSSH
// still agrees chacha20-poly1305, as with the modern profile.
func TestCompatibleKeepsAEAD(t *testing.T) {
	t.Parallel()
	g, key := startAcme(t, gatewayOpts{}, supplierSpec{})
	out, err := g.sftpBatch("acme", key, "pwd\n", "-v")
	if err != nil {
		t.Fatalf("sftp: %v\n%s", err, out)
	}
	for _, dir := range []string{"client->server", "server->client"} {
		if want := "kex: " + dir + " cipher: chacha20-poly1305@openssh.com"; !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
}

// TestScpUpload: OpenSSH's scp (which speaks SFTP since 9.0) copies the
// tree recursively, times preserved (-p: SETSTAT after each file), and
// every file is delivered once.
func TestScpUpload(t *testing.T) {
	t.Parallel()
	bin := testpeer.Require(t, "scp")
	g, key := startAcme(t, gatewayOpts{}, supplierSpec{})
	dir, sums := writeTree(t)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-r", "-p", "-q", "-P", g.port(), "-i", key.path, "-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"}
	for _, e := range entries {
		args = append(args, filepath.Join(dir, e.Name()))
	}
	if out, err := exec.Command(bin, append(args, "acme@127.0.0.1:/")...).CombinedOutput(); err != nil {
		t.Fatalf("scp: %v\n%s\n%s", err, out, g.logTail(20))
	}
	assertTreeDelivered(t, g, sums)
	g.auditVerifies(t)
}
