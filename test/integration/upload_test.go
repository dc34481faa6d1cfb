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

func TestUploadLocalLanding(t *testing.T) {
	t.Parallel()
	g, key := startAcme(t, gatewayOpts{}, supplierSpec{})
	small, smallSHA := randomFile(t, smallSize)
	large, largeSHA := randomFile(t, largeSize)

	t.Run("openssh", func(t *testing.T) {
		out, err := g.sftpBatch("acme", key, fmt.Sprintf("put %s small.bin\nput %s large.bin\nmkdir sub\nput %s sub/s.bin\n", small, large, small))
		if err != nil {
			t.Fatalf("sftp: %v\n%s", err, out)
		}
		assertArrived(t, g, "acme", "/small.bin", smallSHA, smallSize)
		assertArrived(t, g, "acme", "/large.bin", largeSHA, largeSize)
		assertArrived(t, g, "acme", "/sub/s.bin", smallSHA, smallSize)
	})
	t.Run("rclone", func(t *testing.T) {
		for _, f := range []struct{ src, dst string }{{small, "r-small.bin"}, {large, "r-large.bin"}} {
			if out, err := g.rclone("acme", key, "copyto", f.src, "air:"+f.dst); err != nil {
				t.Fatalf("rclone copyto %s: %v\n%s", f.dst, err, out)
			}
		}
		assertArrived(t, g, "acme", "/r-small.bin", smallSHA, smallSize)
		assertArrived(t, g, "acme", "/r-large.bin", largeSHA, largeSize)
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
		assertArrived(t, g, "acme", "/w.csv", smallSHA, smallSize)
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

// TestUploadS3Landing: uploads stream to an S3 landing bucket and are
// delivered to a bucket of the same S3 server, which copies them itself.
func TestUploadS3Landing(t *testing.T) {
	t.Parallel()
	s3 := startVersity(t, "landing", "dest")
	g, key := startAcme(t, gatewayOpts{landing: s3.url("landing"), landingDir: filepath.Join(s3.Root, "landing"), env: s3.Env()},
		supplierSpec{dest: s3.dest("dest", "acme-in")})
	small, smallSHA := randomFile(t, smallSize)
	large, largeSHA := randomFile(t, largeSize)

	out, err := g.sftpBatch("acme", key, fmt.Sprintf("put %s small.bin\nput %s large.bin\n", small, large))
	if err != nil {
		t.Fatalf("sftp: %v\n%s", err, out)
	}
	assertArrived(t, g, "acme", "/small.bin", smallSHA, smallSize)
	assertArrived(t, g, "acme", "/large.bin", largeSHA, largeSize)

	for _, f := range []struct{ src, dst string }{{small, "r-small.bin"}, {large, "r-large.bin"}} {
		if out, err := g.rclone("acme", key, "copyto", f.src, "air:"+f.dst); err != nil {
			t.Fatalf("rclone copyto %s: %v\n%s", f.dst, err, out)
		}
	}
	assertArrived(t, g, "acme", "/r-small.bin", smallSHA, smallSize)
	assertArrived(t, g, "acme", "/r-large.bin", largeSHA, largeSize)
}
