package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/testpeer"
)

// Sync tools stat what they uploaded, set its time, and on their next run
// send only what differs in size or time. A delivered file that vanished
// from the supplier's view was sent again, and delivered again (issue 20).

// syncTree is a local tree of 30 files, 0 B to 5 MiB, nested three deep,
// last modified at syncTime: its root, and each file's sha256 by its path
// below the root.
var syncTime = time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)

func syncTree(t *testing.T) (string, map[string]string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "tree")
	sizes := []int64{0, 1, 17, 511, 4095, 4096, 4097, 32 << 10, 64<<10 - 1, 64 << 10, 100 << 10, 256 << 10,
		300_001, 512 << 10, 1 << 20, 1<<20 + 1, 2 << 20, 3<<20 - 7, 4 << 20, 5 << 20,
		2, 100, 1000, 10_000, 100_000, 200_000, 700_000, 1_500_000, 2_500_000, 5<<20 - 1}
	tree := make(map[string]int64, len(sizes))
	for i, size := range sizes {
		rel := fmt.Sprintf("f%02d.bin", i)
		switch i % 3 {
		case 1:
			rel = "a/" + rel
		case 2:
			rel = fmt.Sprintf("a/b%d/c/%s", i%2, rel)
		}
		tree[rel] = size
	}
	want := writeFiles(t, root, tree)
	// Long ago: a tool that sees the upload time instead sends it again.
	for rel := range tree {
		if err := os.Chtimes(filepath.Join(root, filepath.FromSlash(rel)), syncTime, syncTime); err != nil {
			t.Fatal(err)
		}
	}
	return root, want
}

// deliveredOnce waits until every upload below remote (an absolute path in
// the upload area) has come to rest, and checks that each file of want
// was uploaded exactly once, delivered with its sha256, and nothing else.
// It returns the number of transfers below remote.
func deliveredOnce(t *testing.T, g *gateway, remote string, want map[string]string) int {
	t.Helper()
	below := func(trs []ledger.Transfer) []ledger.Transfer {
		var out []ledger.Transfer
		for _, tr := range trs {
			if tr.Supplier == "acme" && strings.HasPrefix(tr.Path, remote+"/") {
				out = append(out, tr)
			}
		}
		return out
	}
	trs := below(g.waitRows(t, 60*time.Second, "every upload of the tree to come to rest", func(trs []ledger.Transfer) bool {
		paths := map[string]bool{}
		for _, tr := range below(trs) {
			if !g.rests(tr) {
				return false
			}
			paths[tr.Path] = true
		}
		return len(paths) >= len(want)
	}))
	count := map[string]int{}
	for _, tr := range trs {
		count[tr.Path]++
	}
	for rel, sha := range want {
		p := remote + "/" + rel
		if count[p] != 1 {
			t.Errorf("%s uploaded %d times, want once", p, count[p])
			continue
		}
		if tr, _ := transferAt(trs, "acme", p); tr.State != ledger.Delivered || tr.SHA256 != sha {
			t.Errorf("%s: %s sha256 %s; want delivered with %s", p, tr.State, tr.SHA256, sha)
		} else if got := fileSHA256(t, g.destFile("acme", p)); got != sha {
			t.Errorf("delivered %s has sha256 %s, want %s", p, got, sha)
		}
	}
	if len(trs) != len(want) {
		t.Errorf("%d transfers below %s, want %d\n%s", len(trs), remote, len(want), g.diagnosis(trs))
	}
	return len(trs)
}

// rowsBelow counts the transfers below remote.
func rowsBelow(g *gateway, remote string) int {
	n := 0
	for _, tr := range g.transfers() {
		if strings.HasPrefix(tr.Path, remote+"/") {
			n++
		}
	}
	return n
}

func TestSyncRclone(t *testing.T) {
	t.Parallel()
	g, key := startAcme(t, gatewayOpts{}, supplierSpec{})
	src, want := syncTree(t)
	// Default flags: rclone stats each file after uploading it and sets
	// its time, and retries the whole copy (--retries 3) if that fails.
	if out, err := g.rclone("acme", key, "copy", src, "air:tree"); err != nil {
		t.Fatalf("rclone copy: %v\n%s", err, out)
	}
	n := deliveredOnce(t, g, "/tree", want)
	if out, err := g.rclone("acme", key, "check", "--size-only", src, "air:tree"); err != nil {
		t.Errorf("rclone check --size-only: %v\n%s", err, out)
	}
	// Size and time match: the second run sends nothing.
	if out, err := g.rclone("acme", key, "copy", src, "air:tree"); err != nil {
		t.Fatalf("second rclone copy: %v\n%s", err, out)
	}
	if got := rowsBelow(g, "/tree"); got != n {
		t.Errorf("the second rclone copy made %d new transfers, want none", got-n)
	}
	// A file gone from the source: rclone sync removes it from the
	// listing, and nothing else; the delivered copy stays.
	if err := os.Remove(filepath.Join(src, "f00.bin")); err != nil {
		t.Fatal(err)
	}
	if out, err := g.rclone("acme", key, "sync", src, "air:tree"); err != nil {
		t.Fatalf("rclone sync: %v\n%s", err, out)
	}
	if out, err := g.rclone("acme", key, "lsf", "air:tree"); err != nil || strings.Contains(out, "f00.bin") {
		t.Errorf("rclone lsf after sync: %v\n%s", err, out)
	}
	if got := fileSHA256(t, g.destFile("acme", "/tree/f00.bin")); got != want["f00.bin"] {
		t.Errorf("the delivered f00.bin changed: sha256 %s", got)
	}
	if got := rowsBelow(g, "/tree"); got != n {
		t.Errorf("rclone sync made %d new transfers, want none", got-n)
	}
	g.auditVerifies(t)
}

// lftp runs an lftp script against the gateway as acme, over OpenSSH.
func (g *gateway) lftp(key clientKey, script string) (string, error) {
	g.t.Helper()
	bin := testpeer.Require(g.t, "lftp")
	connect := "ssh -a -x -i " + key.path + " -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null" +
		" -o BatchMode=yes -o IdentitiesOnly=yes -o LogLevel=ERROR"
	cmd := exec.Command(bin, "-c", fmt.Sprintf("set sftp:connect-program %q; set net:max-retries 1; open -u acme, -p %s sftp://127.0.0.1; %s",
		connect, g.port(), script))
	cmd.Env = append(os.Environ(), "HOME="+g.t.TempDir()) // no ~/.lftprc
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestSyncLftpMirror(t *testing.T) {
	t.Parallel()
	g, key := startAcme(t, gatewayOpts{}, supplierSpec{})
	src, want := syncTree(t)
	if out, err := g.lftp(key, "mirror -R "+src+" /tree"); err != nil {
		t.Fatalf("lftp mirror -R: %v\n%s", err, out)
	}
	n := deliveredOnce(t, g, "/tree", want)
	if out, err := g.lftp(key, "mirror -R "+src+" /tree"); err != nil {
		t.Fatalf("second lftp mirror -R: %v\n%s", err, out)
	}
	if got := rowsBelow(g, "/tree"); got != n {
		t.Errorf("the second lftp mirror -R made %d new transfers, want none", got-n)
	}
	g.auditVerifies(t)
}

func TestSyncOpenSSHPutRecursive(t *testing.T) {
	t.Parallel()
	g, key := startAcme(t, gatewayOpts{}, supplierSpec{})
	src, want := syncTree(t)
	// -p sets each file's time with FSETSTAT on its open handle.
	for _, put := range []string{"put -r", "put -rp"} {
		remote := "/" + strings.ReplaceAll(put, " ", "")
		out, err := g.sftpBatch("acme", key, fmt.Sprintf("%s %s %s\n", put, src, path.Base(remote)))
		if err != nil {
			t.Fatalf("sftp %s: %v\n%s", put, err, out)
		}
		deliveredOnce(t, g, remote, want)
	}
	// Times set with -p are what the listing shows; without, the upload's.
	for dir, want := range map[string]int{"/put-rp/a/b0/c": 5, "/put-r/a/b0/c": 0} {
		out, err := g.sftpBatch("acme", key, "ls -l "+dir+"\n")
		if err != nil {
			t.Fatalf("sftp ls: %v\n%s", err, out)
		}
		if got := strings.Count(out, " 2021 "); got != want {
			t.Errorf("sftp ls -l %s shows\n%s\nwant %d files of 2021", dir, out, want)
		}
	}
	g.auditVerifies(t)
}
