package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/sftptest"
)

// The smaller front-door defects of issue 20, each against the real binary
// and OpenSSH's sftp.

// TestFrontDoorDF: OpenSSH's df answers with what the supplier may upload:
// one file of max_file_size (the landing disk has more free here), none
// of it used.
func TestFrontDoorDF(t *testing.T) {
	t.Parallel()
	g, key := startAcme(t, gatewayOpts{maxFileSize: "3MiB"}, supplierSpec{})
	out, err := g.sftpBatch("acme", key, "df\ndf -h\n")
	if err != nil {
		t.Fatalf("sftp df: %v\n%s", err, out)
	}
	// Size, Used, Avail, (root), %Capacity, in KiB.
	row := regexp.MustCompile(`(?m)^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)%\s*$`).FindStringSubmatch(out)
	if row == nil {
		t.Fatalf("df printed no sizes:\n%s", out)
	}
	if want := []string{"3072", "0", "3072", "3072", "0"}; !equalStrings(row[1:], want) {
		t.Errorf("df: size, used, avail, root, capacity = %v; want %v (max_file_size 3 MiB)\n%s", row[1:], want, out)
	}
	if !strings.Contains(out, "3.0M") {
		t.Errorf("df -h does not show 3.0M:\n%s", out)
	}
}

func equalStrings(a, b []string) bool { return strings.Join(a, " ") == strings.Join(b, " ") }

// TestFrontDoorLinks: hardlink@openssh.com is not announced, so OpenSSH's
// ln says the server lacks it; ln -s is refused as unsupported. Neither
// changes anything.
func TestFrontDoorLinks(t *testing.T) {
	t.Parallel()
	g, key := startAcme(t, gatewayOpts{}, supplierSpec{})
	src, sha := randomFile(t, 4<<10)
	g.put(t, "acme", key, map[string]string{"/a.bin": src})
	assertArrived(t, g, "acme", "/a.bin", sha, 4<<10)
	rows := len(g.transfers())
	for _, tt := range []struct{ cmd, says string }{
		{"ln a.bin b.bin", "hardlink@openssh.com"},
		{"ln -s a.bin b.bin", "unsupported"},
	} {
		out, err := g.sftpBatch("acme", key, tt.cmd+"\n")
		if err == nil {
			t.Errorf("%s succeeded:\n%s", tt.cmd, out)
		}
		if !strings.Contains(out, tt.says) {
			t.Errorf("%s: the client says %q, want it to mention %q", tt.cmd, strings.TrimSpace(out), tt.says)
		}
	}
	if got := len(g.transfers()); got != rows {
		t.Errorf("%d transfers after the links, want %d", got, rows)
	}
}

// TestFrontDoorFailedSize: a failed upload's row records the bytes that
// arrived: over max_file_size, and cut off by a killed client.
func TestFrontDoorFailedSize(t *testing.T) {
	t.Parallel()
	g, key := startAcme(t, gatewayOpts{maxFileSize: "1MiB"}, supplierSpec{})

	over, _ := randomFile(t, 3<<20)
	if out, err := g.sftpBatch("acme", key, fmt.Sprintf("put %s over.bin\n", over)); err == nil {
		t.Fatalf("an upload over max_file_size succeeded:\n%s", out)
	}
	tr := g.waitTransfer(t, "acme", "/over.bin", 20*time.Second, "the over-limit upload to fail",
		func(tr ledger.Transfer) bool { return tr.State == ledger.Failed })
	if tr.Size <= 0 || tr.Size > 1<<20 || tr.SHA256 != "" {
		t.Errorf("over-limit row: size %d, sha256 %q; want the bytes received, 0 < size <= 1 MiB, no sha256", tr.Size, tr.SHA256)
	}

	// Cut: a 20 MiB upload at about 1 MB/s, killed once 2 MiB have arrived.
	g2, key2 := startAcme(t, gatewayOpts{}, supplierSpec{})
	big, _ := randomFile(t, 20<<20)
	cmd := g2.sftpCommand("acme", key2, fmt.Sprintf("put %s cut.bin\n", big), "-l", "8000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "2 MiB of the upload to arrive", func() bool {
		return g2.metric("airlock_sftp_upload_bytes_total") >= 2<<20
	})
	arrived := g2.metric("airlock_sftp_upload_bytes_total")
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	// Cut off, it is interrupted (kept to resume: see resume_test.go).
	tr = g2.waitTransfer(t, "acme", "/cut.bin", 30*time.Second, "the cut upload to be interrupted",
		func(tr ledger.Transfer) bool { return tr.State == ledger.Interrupted })
	if float64(tr.Size) < arrived || tr.Size >= 20<<20 || tr.SHA256 != "" {
		t.Errorf("cut row: size %d, sha256 %q; want at least the %.0f bytes seen arriving, less than the file, no sha256",
			tr.Size, tr.SHA256, arrived)
	}
	g.auditVerifies(t)
	g2.auditVerifies(t)
}

// TestFrontDoorDownloads: a download is an egress transfer in the ledger:
// delivered with the sha256 of what was read when read whole, failed with
// the bytes read when read in part; listed by transfers list --direction,
// audited, and never shown in the supplier's upload area.
func TestFrontDoorDownloads(t *testing.T) {
	t.Parallel()
	key := newClientKey(t)
	egress := t.TempDir()
	src, sha := randomFile(t, 1<<20)
	content, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(egress, "out", "extract.bin"), string(content))
	g := newGateway(t, gatewayOpts{suppliers: []supplierSpec{{name: "partner", keys: []clientKey{key}, egress: egress}}})
	g.start()

	got := filepath.Join(t.TempDir(), "extract.bin")
	if out, err := g.sftpBatch("partner", key, fmt.Sprintf("get /download/out/extract.bin %s\n", got)); err != nil {
		t.Fatalf("sftp get: %v\n%s", err, out)
	}
	if fileSHA256(t, got) != sha {
		t.Fatal("the downloaded file differs")
	}
	whole := g.waitTransfer(t, "partner", "/out/extract.bin", 10*time.Second, "the download to be recorded",
		func(ledger.Transfer) bool { return true })
	if whole.Direction != ledger.Egress || whole.State != ledger.Delivered || whole.Size != 1<<20 || whole.SHA256 != sha {
		t.Errorf("download row: %s %s, %d bytes, sha256 %s; want egress delivered, %d bytes, sha256 %s",
			whole.Direction, whole.State, whole.Size, whole.SHA256, 1<<20, sha)
	}

	// A raw client reads the first half and closes the file.
	const half = 512 << 10
	raw := dialRaw(t, g, "partner", key)
	typ, body := raw.Call(sftptest.FXPOpen, "/download/out/extract.bin", uint32(sftptest.FXFRead), uint32(0))
	if typ != sftptest.FXPHandle {
		code, msg := raw.StatusOf(body)
		t.Fatalf("open: status %d %q", code, msg)
	}
	handle, _ := raw.String(body)
	for off := 0; off < half; off += 64 << 10 {
		if typ, _ := raw.Call(sftptest.FXPRead, handle, uint64(off), uint32(64<<10)); typ != sftptest.FXPData {
			t.Fatalf("read at %d: answer of type %d", off, typ)
		}
	}
	if code, msg := raw.Status(sftptest.FXPClose, handle); code != sftptest.FXOK {
		t.Fatalf("close: status %d %q", code, msg)
	}
	halfSum := sha256.Sum256(content[:half])
	var partial ledger.Transfer
	g.waitRows(t, 10*time.Second, "the partial download to be recorded", func(trs []ledger.Transfer) bool {
		for _, tr := range trs {
			if tr.Direction == ledger.Egress && tr.ID != whole.ID {
				partial = tr
				return true
			}
		}
		return false
	})
	if partial.State != ledger.Failed || partial.Size != half || partial.SHA256 != hex.EncodeToString(halfSum[:]) ||
		!strings.Contains(partial.Error, "partial") {
		t.Errorf("partial download row: %s, %d bytes, sha256 %s, error %q; want failed, %d bytes, the first half's sha256",
			partial.State, partial.Size, partial.SHA256, partial.Error, half)
	}

	out, errOut, err := g.airlock("transfers", "list", "--direction", "egress", "--json")
	if err != nil {
		t.Fatalf("transfers list --direction egress: %v\n%s", err, errOut)
	}
	var listed []ledger.Transfer
	if err := json.Unmarshal([]byte(out), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 2 || listed[0].ID != partial.ID || listed[1].ID != whole.ID {
		t.Errorf("transfers list --direction egress: %d rows %+v, want the partial and the whole download", len(listed), listed)
	}
	if out, _, _ := g.airlock("transfers", "list", "--direction", "ingress", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("transfers list --direction ingress lists downloads: %s", out)
	}
	for _, tr := range []ledger.Transfer{whole, partial} {
		kinds := map[string]bool{}
		for _, ev := range g.eventsOf(tr.ID) {
			kinds[ev.Kind] = true
		}
		if !kinds["download.start"] || !kinds["download.finish"] && !kinds["download.partial"] {
			t.Errorf("download %s: audit events %v, want download.start and its outcome", tr.ID, kinds)
		}
	}
	// Downloads are no uploads: the upload area shows nothing of them,
	// not even a receipt.
	c, _ := dialSFTP(t, g, "partner", key)
	if infos, err := c.ReadDir("/upload"); err != nil || len(infos) != 0 {
		t.Errorf("ReadDir(/upload) = %d entries, %v; want none", len(infos), err)
	}
	if _, err := c.Stat("/upload/out/extract.bin.receipt.json"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a receipt of a download in the upload area: %v", err)
	}
	g.auditVerifies(t)
}

// TestFrontDoorNoStagingLeft: deliveries into nested directories leave no
// staging directory in the destination tree (nor in landing).
func TestFrontDoorNoStagingLeft(t *testing.T) {
	t.Parallel()
	g, key := startAcme(t, gatewayOpts{}, supplierSpec{})
	files := map[string]string{}
	shas := map[string]string{}
	for i, p := range []string{"/a.bin", "/2026/b.bin", "/2026/q1/c.bin"} {
		src, sha := randomFile(t, int64(8<<10+i))
		files[p], shas[p] = src, sha
	}
	g.put(t, "acme", key, files)
	for p, sha := range shas {
		fi, err := os.Stat(files[p])
		if err != nil {
			t.Fatal(err)
		}
		assertArrived(t, g, "acme", p, sha, fi.Size())
	}
	for _, root := range []string{g.specs["acme"].dest.dir, g.landingDir} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Name() == ".airlock-staging" {
				t.Errorf("%s left behind", p)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
