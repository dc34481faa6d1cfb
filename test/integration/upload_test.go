package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-gw/airlock/internal/ledger"
)

const (
	smallSize = 1 << 20
	largeSize = 200 << 20
)

// assertLanded checks the ledger row and, for a local landing store, the
// landed bytes of an upload.
func assertLanded(t *testing.T, g *gateway, landingRoot, supplier, path, sha string, size int64) {
	t.Helper()
	tr, ok := transferAt(g.transfers(), supplier, path)
	if !ok {
		t.Fatalf("no transfer for %s %s", supplier, path)
	}
	if tr.State != ledger.Received || tr.SHA256 != sha || tr.Size != size {
		t.Fatalf("transfer %s: state %s sha %s size %d; want received %s %d", path, tr.State, tr.SHA256, tr.Size, sha, size)
	}
	if got := fileSHA256(t, filepath.Join(landingRoot, tr.LandingKey)); got != sha {
		t.Fatalf("landed bytes of %s have sha256 %s, want %s", path, got, sha)
	}
}

func TestUploadLocalLanding(t *testing.T) {
	t.Parallel()
	key := newClientKey(t)
	g := newGateway(t, gatewayOpts{suppliers: []supplierSpec{{name: "acme", keys: []clientKey{key}}}})
	g.start()
	small, smallSHA := randomFile(t, smallSize)
	large, largeSHA := randomFile(t, largeSize)

	t.Run("openssh", func(t *testing.T) {
		out, err := g.sftpBatch("acme", key, fmt.Sprintf("put %s small.bin\nput %s large.bin\nmkdir sub\nput %s sub/s.bin\n", small, large, small))
		if err != nil {
			t.Fatalf("sftp: %v\n%s", err, out)
		}
		assertLanded(t, g, g.landing, "acme", "/small.bin", smallSHA, smallSize)
		assertLanded(t, g, g.landing, "acme", "/large.bin", largeSHA, largeSize)
		assertLanded(t, g, g.landing, "acme", "/sub/s.bin", smallSHA, smallSize)
	})
	t.Run("rclone", func(t *testing.T) {
		for _, f := range []struct{ src, dst string }{{small, "r-small.bin"}, {large, "r-large.bin"}} {
			if out, err := g.rclone("acme", key, "copyto", f.src, "air:"+f.dst); err != nil {
				t.Fatalf("rclone copyto %s: %v\n%s", f.dst, err, out)
			}
		}
		assertLanded(t, g, g.landing, "acme", "/r-small.bin", smallSHA, smallSize)
		assertLanded(t, g, g.landing, "acme", "/r-large.bin", largeSHA, largeSize)
		out, err := g.rclone("acme", key, "lsf", "air:")
		if err != nil || !strings.Contains(out, "r-large.bin") {
			t.Fatalf("rclone lsf: %v\n%s", err, out)
		}
	})
	t.Run("temporary name then rename", func(t *testing.T) {
		// WinSCP and FileZilla style: upload to x.filepart, rename when done.
		out, err := g.sftpBatch("acme", key, fmt.Sprintf("put %s w.csv.filepart\nrename w.csv.filepart w.csv\n", small))
		if err != nil {
			t.Fatalf("sftp: %v\n%s", err, out)
		}
		assertLanded(t, g, g.landing, "acme", "/w.csv", smallSHA, smallSize)
		if tr, ok := transferAt(g.transfers(), "acme", "/w.csv.filepart"); ok {
			t.Fatalf("the temporary name is still a transfer: %+v", tr)
		}
	})
	t.Run("temporary name never renamed", func(t *testing.T) {
		out, err := g.sftpBatch("acme", key, fmt.Sprintf("put %s z.csv.filepart\n", small))
		if err != nil {
			t.Fatalf("sftp: %v\n%s", err, out)
		}
		eventually(t, 5e9, "abandoned upload to fail", func() bool {
			tr, ok := transferAt(g.transfers(), "acme", "/z.csv.filepart")
			return ok && tr.State == ledger.Failed && strings.Contains(tr.Error, "renamed")
		})
		tr, _ := transferAt(g.transfers(), "acme", "/z.csv.filepart")
		if _, err := os.Stat(filepath.Join(g.landing, tr.LandingKey)); !os.IsNotExist(err) {
			t.Fatalf("abandoned upload still landed: %v", err)
		}
	})
}

func TestUploadS3Landing(t *testing.T) {
	t.Parallel()
	s3 := startVersity(t, "landing")
	key := newClientKey(t)
	g := newGateway(t, gatewayOpts{
		landing:   s3.url("landing"),
		env:       s3.env(),
		suppliers: []supplierSpec{{name: "acme", keys: []clientKey{key}}},
	})
	g.start()
	small, smallSHA := randomFile(t, smallSize)
	large, largeSHA := randomFile(t, largeSize)
	landingRoot := filepath.Join(s3.root, "landing")

	out, err := g.sftpBatch("acme", key, fmt.Sprintf("put %s small.bin\nput %s large.bin\n", small, large))
	if err != nil {
		t.Fatalf("sftp: %v\n%s", err, out)
	}
	assertLanded(t, g, landingRoot, "acme", "/small.bin", smallSHA, smallSize)
	assertLanded(t, g, landingRoot, "acme", "/large.bin", largeSHA, largeSize)

	for _, f := range []struct{ src, dst string }{{small, "r-small.bin"}, {large, "r-large.bin"}} {
		if out, err := g.rclone("acme", key, "copyto", f.src, "air:"+f.dst); err != nil {
			t.Fatalf("rclone copyto %s: %v\n%s", f.dst, err, out)
		}
	}
	assertLanded(t, g, landingRoot, "acme", "/r-small.bin", smallSHA, smallSize)
	assertLanded(t, g, landingRoot, "acme", "/r-large.bin", largeSHA, largeSize)
}
