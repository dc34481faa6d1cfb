package sftpd

import (
	"github.com/airlock-gw/airlock/internal/names"
	"testing"

	"golang.org/x/sys/unix"
)

// TestStatVFS: df tells a supplier what it may upload: one file of the
// maximum size, less when the landing directory's disk has less; the
// download area is flagged read-only; hardlink@openssh.com is not announced.
func TestStatVFS(t *testing.T) {
	t.Parallel()
	const maxFile = 3 << 20
	ts := newTestServer(t, serverOptions{maxFileSize: maxFile})
	if raw := ts.rawClient(t, egresser); raw.Extensions["statvfs@openssh.com"] != "2" {
		t.Errorf("extensions %v: statvfs@openssh.com revision 2 not announced", raw.Extensions)
	} else if _, ok := raw.Extensions["hardlink@openssh.com"]; ok {
		t.Errorf("extensions %v: hardlink@openssh.com announced, but the tree has no links", raw.Extensions)
	}
	var disk unix.Statfs_t
	if err := unix.Statfs(ts.landingDir, &disk); err != nil {
		t.Fatal(err)
	}
	wantFree := min(uint64(maxFile), disk.Bavail*uint64(disk.Bsize)) / vfsBlockSize * vfsBlockSize

	c := ts.sftpClient(t, egresser)
	tests := []struct {
		path     string
		free     uint64
		readOnly bool
	}{
		{"/upload", wantFree, false},
		{"/upload/sub/x.csv", wantFree, false},
		{"/download", wantFree, true},
		{"/", wantFree, false},
	}
	for _, tt := range tests {
		vfs, err := c.StatVFS(tt.path)
		if err != nil {
			t.Errorf("StatVFS(%s): %v", tt.path, err)
			continue
		}
		if vfs.Frsize != vfsBlockSize || vfs.TotalSpace() != tt.free || vfs.FreeSpace() != tt.free || vfs.Bavail != vfs.Bfree {
			t.Errorf("StatVFS(%s): block %d, total %d, free %d (avail %d blocks); want total = free = %d",
				tt.path, vfs.Frsize, vfs.TotalSpace(), vfs.FreeSpace(), vfs.Bavail, tt.free)
		}
		if got := vfs.Flag&vfsReadOnly != 0; got != tt.readOnly {
			t.Errorf("StatVFS(%s): read-only %v, want %v", tt.path, got, tt.readOnly)
		}
		if vfs.Namemax != names.MaxName {
			t.Errorf("StatVFS(%s): name max %d, want %d", tt.path, vfs.Namemax, names.MaxName)
		}
	}
	if _, err := c.StatVFS("/../etc"); err == nil {
		t.Error("StatVFS outside the home answered")
	}
}
