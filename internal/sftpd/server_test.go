package sftpd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/crypto/ssh"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/sftptest"
	"github.com/airlock-gw/airlock/internal/storage"
)

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// transferAt returns supplier's newest transfer at p.
func (ts *testServer) transferAt(t *testing.T, supplier, p string) ledger.Transfer {
	t.Helper()
	trs, err := ts.ledger.List(context.Background(), ledger.Filter{Supplier: supplier, Path: p})
	if err != nil {
		t.Fatal(err)
	}
	if len(trs) == 0 {
		t.Fatalf("no transfer of %s at %s", supplier, p)
	}
	return trs[0]
}

func (ts *testServer) get(t *testing.T, id string) ledger.Transfer {
	t.Helper()
	tr, err := ts.ledger.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func fileNames(infos []os.FileInfo) []string {
	var out []string
	for _, fi := range infos {
		out = append(out, fi.Name())
	}
	slices.Sort(out)
	return out
}

// checkReceived asserts that tr holds data, received and landed.
func (ts *testServer) checkReceived(t *testing.T, tr ledger.Transfer, data []byte) {
	t.Helper()
	if tr.State != ledger.Received {
		t.Errorf("%s: state %s (error %q), want received", tr.Path, tr.State, tr.Error)
	}
	if tr.Size != int64(len(data)) {
		t.Errorf("%s: size %d, want %d", tr.Path, tr.Size, len(data))
	}
	if tr.SHA256 != sha256Hex(data) {
		t.Errorf("%s: sha256 %s, want %s", tr.Path, tr.SHA256, sha256Hex(data))
	}
	got, ok := ts.landed(t)[tr.LandingKey]
	if !ok {
		t.Fatalf("%s: nothing landed at %s", tr.Path, tr.LandingKey)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("%s: landed %d bytes that differ from the %d uploaded", tr.Path, len(got), len(data))
	}
}

func TestUpload(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	c := ts.sftpClient(t, uploader)
	data := source(300_000)
	if err := putFile(c, "/data.csv", data); err != nil {
		t.Fatalf("upload: %v", err)
	}

	tr := ts.onlyTransfer(t, uploader)
	ts.checkReceived(t, tr, data)
	if tr.Path != "/data.csv" || tr.Direction != ledger.Ingress || tr.Node != "test" || tr.RemoteIP != "127.0.0.1" {
		t.Errorf("transfer = %+v", tr)
	}
	if !strings.HasPrefix(tr.LandingKey, uploader+"/") {
		t.Errorf("landing key %q is not under the supplier's prefix", tr.LandingKey)
	}
	if files := ts.landed(t); len(files) != 1 {
		t.Errorf("landing holds %d files, want 1 (no staged leftovers)", len(files))
	}

	evs, err := ts.ledger.Events(context.Background(), tr.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, ev := range evs {
		kinds = append(kinds, ev.Kind)
	}
	if !slices.Equal(kinds, []string{"upload.start", "upload.finish"}) {
		t.Errorf("events of the transfer: %v", kinds)
	}

	// The client can check what it sent.
	fi, err := c.Stat("/data.csv")
	if err != nil || fi.Size() != int64(len(data)) || fi.IsDir() {
		t.Errorf("Stat = %v, %v", fi, err)
	}
	infos, err := c.ReadDir("/")
	if err != nil || !slices.Equal(fileNames(infos), []string{"data.csv"}) {
		t.Errorf("ReadDir(/) = %v, %v", fileNames(infos), err)
	}

	if got := testutil.ToFloat64(ts.metrics.uploads.WithLabelValues("received")); got != 1 {
		t.Errorf("uploads{received} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(ts.metrics.uploadBytes); got != float64(len(data)) {
		t.Errorf("upload bytes = %v, want %d", got, len(data))
	}
}

func TestUploadIntoDirectories(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	c := ts.sftpClient(t, uploader)
	if err := c.Mkdir("/2026"); err != nil {
		t.Fatalf("Mkdir: %v", err)
	}
	if err := c.Mkdir("/2026"); err == nil {
		t.Error("second Mkdir of the same directory succeeded")
	}
	// A write-only open (no READ flag) takes the Filewrite path.
	f, err := c.OpenFile("/2026/jan.csv", os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("a,b\n1,2\n")
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	ts.checkReceived(t, ts.transferAt(t, uploader, "/2026/jan.csv"), data)
	if infos, err := c.ReadDir("/2026"); err != nil || !slices.Equal(fileNames(infos), []string{"jan.csv"}) {
		t.Errorf("ReadDir(/2026) = %v, %v", fileNames(infos), err)
	}
	if fi, err := c.Stat("/2026"); err != nil || !fi.IsDir() {
		t.Errorf("Stat(/2026) = %v, %v", fi, err)
	}
	if err := c.RemoveDirectory("/2026"); err == nil {
		t.Error("removed a directory holding an upload")
	}
	if err := putFile(c, "/missing/x.csv", data); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("upload into a missing directory: err = %v, want not-exist", err)
	}
	if err := c.Mkdir("/empty"); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveDirectory("/empty"); err != nil {
		t.Errorf("RemoveDirectory of an empty directory: %v", err)
	}
	if _, err := c.Stat("/empty"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stat after RemoveDirectory: err = %v", err)
	}
	if _, err := c.OpenFile("/2026/jan.csv", os.O_WRONLY|os.O_CREATE|os.O_APPEND); err == nil {
		t.Error("append to a received upload accepted")
	}
}

// TestDirectoriesRecorded checks that a directory made with MKDIR is in the
// ledger, audited, and seen by a node that starts afresh.
func TestDirectoriesRecorded(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	c := ts.sftpClient(t, uploader)
	for _, d := range []string{"/kept", "/gone"} {
		if err := c.Mkdir(d); err != nil {
			t.Fatalf("Mkdir %s: %v", d, err)
		}
	}
	if err := c.RemoveDirectory("/gone"); err != nil {
		t.Fatal(err)
	}
	if dirs, err := ts.ledger.Dirs(t.Context(), uploader, 10); err != nil || !slices.Equal(dirs, []string{"/kept"}) {
		t.Errorf("ledger directories %q, %v; want /kept", dirs, err)
	}
	var kinds []string
	for _, ev := range ts.events(t, "") {
		if strings.HasPrefix(ev.Kind, "dir.") {
			kinds = append(kinds, ev.Kind+" "+ev.Detail["path"])
		}
	}
	if want := []string{"dir.create /kept", "dir.create /gone", "dir.remove /gone"}; !slices.Equal(kinds, want) {
		t.Errorf("events %q, want %q", kinds, want)
	}

	// A node that has not seen this supplier yet (here: its cache cleared).
	ts.srv.dirs.mu.Lock()
	ts.srv.dirs.dirs = nil
	ts.srv.dirs.mu.Unlock()
	c2 := ts.sftpClient(t, uploader)
	if fi, err := c2.Stat("/kept"); err != nil || !fi.IsDir() {
		t.Errorf("Stat(/kept) on a fresh node = %v, %v", fi, err)
	}
}

func TestUploadConcurrentOutOfOrderWrites(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		window int
	}{
		{"default window", 0},
		{"window smaller than the writes in flight", 512 << 10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, serverOptions{maxFileSize: 16 << 20, reorderWindow: tt.window})
			c := ts.sftpClient(t, uploader, sftp.UseConcurrentWrites(true), sftp.MaxConcurrentRequestsPerFile(64))
			data := source(8<<20 + 12345)
			f, err := c.Create("/big.bin")
			if err != nil {
				t.Fatal(err)
			}
			if n, err := f.ReadFrom(bytes.NewReader(data)); err != nil || n != int64(len(data)) {
				t.Fatalf("ReadFrom = %d, %v", n, err)
			}
			if err := f.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			ts.checkReceived(t, ts.onlyTransfer(t, uploader), data)
		})
	}
}

func TestUploadSizeLimit(t *testing.T) {
	t.Parallel()
	const limit = 1 << 20
	ts := newTestServer(t, serverOptions{maxFileSize: limit})
	c := ts.sftpClient(t, uploader)

	exact := source(limit)
	if err := putFile(c, "/exact.bin", exact); err != nil {
		t.Fatalf("upload of exactly max_file_size: %v", err)
	}
	ts.checkReceived(t, ts.transferAt(t, uploader, "/exact.bin"), exact)

	err := putFile(c, "/over.bin", source(limit+1))
	if err == nil {
		t.Fatal("upload one byte over max_file_size succeeded")
	}
	if !strings.Contains(err.Error(), "maximum file size") || !strings.Contains(err.Error(), "1048576") {
		t.Errorf("error %q does not mention the limit", err)
	}
	tr := ts.transferAt(t, uploader, "/over.bin")
	if tr.State != ledger.Failed || !strings.Contains(tr.Error, "maximum file size") {
		t.Errorf("over-limit transfer: state %s, error %q", tr.State, tr.Error)
	}
	if tr.Size <= 0 || tr.Size > limit || tr.SHA256 != "" {
		t.Errorf("over-limit transfer: size %d, sha256 %q; want the bytes received (0 < size <= %d), no sha256", tr.Size, tr.SHA256, limit)
	}
	for key := range ts.landed(t) {
		if strings.HasPrefix(key, tr.LandingKey) {
			t.Errorf("the over-limit upload left %s in landing", key)
		}
	}
	if len(ts.landed(t)) != 1 {
		t.Errorf("landing holds %d files, want only the exact-size one", len(ts.landed(t)))
	}
	fails := 0
	for _, ev := range ts.events(t, "upload.fail") {
		if ev.TransferID == tr.ID && ev.Detail["reason"] == "too-large" {
			fails++
		}
	}
	if fails != 1 {
		t.Errorf("%d upload.fail events with reason too-large, want 1", fails)
	}
}

func TestTraversal(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	now := time.Now()
	ops := []struct {
		name string
		do   func(c *sftp.Client, p string) error
	}{
		{"Create", func(c *sftp.Client, p string) error { _, err := c.Create(p); return err }},
		{"OpenFile write-only", func(c *sftp.Client, p string) error { _, err := c.OpenFile(p, os.O_WRONLY|os.O_CREATE); return err }},
		{"Open", func(c *sftp.Client, p string) error { _, err := c.Open(p); return err }},
		{"ReadDir", func(c *sftp.Client, p string) error { _, err := c.ReadDir(p); return err }},
		{"Stat", func(c *sftp.Client, p string) error { _, err := c.Stat(p); return err }},
		{"Lstat", func(c *sftp.Client, p string) error { _, err := c.Lstat(p); return err }},
		{"Chmod", func(c *sftp.Client, p string) error { return c.Chmod(p, 0o644) }},
		{"Chtimes", func(c *sftp.Client, p string) error { return c.Chtimes(p, now, now) }},
		{"Truncate", func(c *sftp.Client, p string) error { return c.Truncate(p, 0) }},
		{"Rename from", func(c *sftp.Client, p string) error { return c.Rename(p, "/y.csv") }},
		{"Rename to", func(c *sftp.Client, p string) error { return c.Rename("/y.csv", p) }},
		{"Rename both", func(c *sftp.Client, p string) error { return c.Rename(p, p) }},
		{"PosixRename from", func(c *sftp.Client, p string) error { return c.PosixRename(p, "/y.csv") }},
		{"PosixRename to", func(c *sftp.Client, p string) error { return c.PosixRename("/y.csv", p) }},
		{"Remove", func(c *sftp.Client, p string) error { return c.Remove(p) }},
		{"RemoveDirectory", func(c *sftp.Client, p string) error { return c.RemoveDirectory(p) }},
		{"Mkdir", func(c *sftp.Client, p string) error { return c.Mkdir(p) }},
		{"Symlink target", func(c *sftp.Client, p string) error { return c.Symlink(p, "/link") }},
		{"Symlink link", func(c *sftp.Client, p string) error { return c.Symlink("/y.csv", p) }},
		{"ReadLink", func(c *sftp.Client, p string) error { _, err := c.ReadLink(p); return err }},
		{"Link from", func(c *sftp.Client, p string) error { return c.Link(p, "/link") }},
		{"Link to", func(c *sftp.Client, p string) error { return c.Link("/y.csv", p) }},
		{"StatVFS", func(c *sftp.Client, p string) error { _, err := c.StatVFS(p); return err }},
	}
	paths := []string{"../x", "../../etc/passwd", "/../x", "/a/../../x", "./../x"}
	for _, op := range ops {
		// A client per operation keeps each connection's refusals within
		// what it may have recorded one by one.
		conn := ts.connect(t, uploader)
		c, err := sftp.NewClient(conn)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			t.Run(op.name+" "+p, func(t *testing.T) {
				before := ts.refusals(t, "escape")
				if err := op.do(c, p); err == nil {
					t.Fatalf("%s(%q) succeeded", op.name, p)
				}
				if after := ts.refusals(t, "escape"); after <= before {
					t.Errorf("%s(%q): no request.refused event with reason escape", op.name, p)
				}
			})
		}
		c.Close()
		conn.Close()
	}

	t.Run("RealPath confines to the home", func(t *testing.T) {
		c := ts.sftpClient(t, uploader)
		for p, want := range map[string]string{
			"../x": "/x", "../../etc/passwd": "/etc/passwd", "/../x": "/x", "..": "/", ".": "/", "/a/../../b": "/b",
		} {
			got, err := c.RealPath(p)
			if err != nil || got != want {
				t.Errorf("RealPath(%q) = %q, %v; want %q", p, got, err, want)
			}
		}
		if _, err := c.Stat("/etc/passwd"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Stat(/etc/passwd) inside the home: err = %v, want not-exist", err)
		}
	})

	// Every packet type that carries a path, by hand: the status is
	// permission denied and says why.
	t.Run("status of each packet type", func(t *testing.T) {
		r := ts.rawClient(t, uploader)
		for _, req := range []struct {
			name   string
			typ    byte
			fields []any
		}{
			{"OPEN", fxpOpen, []any{"../x", uint32(sftptest.FXFWrite | sftptest.FXFCreat), uint32(0)}},
			{"OPEN read", fxpOpen, []any{"/../x", uint32(sftptest.FXFRead), uint32(0)}},
			{"OPENDIR", fxpOpendir, []any{".."}},
			{"STAT", fxpStat, []any{"../x"}},
			{"LSTAT", fxpLstat, []any{"../x"}},
			{"SETSTAT", fxpSetstat, []any{"../x", uint32(0)}},
			{"REMOVE", fxpRemove, []any{"../x"}},
			{"MKDIR", fxpMkdir, []any{"../x", uint32(0)}},
			{"RMDIR", fxpRmdir, []any{"../x"}},
			{"READLINK", fxpReadlink, []any{"../x"}},
			{"RENAME", fxpRename, []any{"/a", "../x"}},
			{"SYMLINK", fxpSymlink, []any{"../x", "/l"}},
			{"posix-rename", fxpExtended, []any{"posix-rename@openssh.com", "../x", "/b"}},
			{"hardlink", fxpExtended, []any{"hardlink@openssh.com", "/a", "../x"}},
			{"statvfs", fxpExtended, []any{"statvfs@openssh.com", "../x"}},
		} {
			code, msg := r.Status(req.typ, req.fields...)
			if code != sftptest.FXPermissionDenied || !strings.Contains(msg, ErrEscape.Error()) ||
				!strings.Contains(msg, "(outside the home directory)") {
				t.Errorf("%s: status %d %q, want permission denied: %s", req.name, code, msg, ErrEscape)
			}
		}
	})

	for _, ev := range ts.events(t, "request.refused") {
		if ev.Detail["reason"] == "escape" &&
			(ev.Actor != uploader || ev.RemoteIP != "127.0.0.1" || ev.ConnID == "" || ev.Detail["path"] != "(outside the home directory)") {
			t.Errorf("escape event lacks who and what: %+v", ev)
		}
	}
	if trs := ts.transfers(t, uploader); len(trs) != 0 {
		t.Errorf("escape attempts created transfers: %+v", trs)
	}
	ts.assertNothingLanded(t)
	checkNothingCreated(t, ts.root, "x", "y.csv", "passwd", "link", "l", "etc")
	checkNothingCreated(t, filepath.Dir(ts.root), "x", "y.csv", "passwd", "link", "l", "etc")
	for _, name := range []string{"x", "y.csv", "link", "l", "../x"} { // relative to the test's working directory
		if _, err := os.Lstat(name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s exists in the working directory (%v)", name, err)
		}
	}
}

// checkNothingCreated fails if any of names exists below dir.
func checkNothingCreated(t *testing.T, dir string, names ...string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // other tests' directories come and go
		}
		if slices.Contains(names, d.Name()) {
			t.Errorf("%s was created", p)
		}
		return nil
	})
}

func TestTraversalEgress(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	c := ts.sftpClient(t, egresser)
	for _, p := range []string{"/download/../../x", "/upload/../../x", "../download/report.csv", "/../download/report.csv"} {
		before := ts.refusals(t, "escape")
		if _, err := c.Open(p); err == nil {
			t.Errorf("Open(%q) succeeded", p)
		}
		if _, err := c.Create(p); err == nil {
			t.Errorf("Create(%q) succeeded", p)
		}
		if ts.refusals(t, "escape") != before+2 {
			t.Errorf("%q: escape attempts not audited", p)
		}
	}
	ts.assertNothingLanded(t)
}

func TestNamePolicy(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	c := ts.sftpClient(t, uploader)
	r := ts.rawClient(t, uploader)
	tests := []struct {
		name string
		p    string
		rule string
	}{
		{"space", "/a b.csv", "contains a space"},
		{"tab", "/a\tb.csv", "contains control character U+0009"},
		{"newline", "/a\nb.csv", "contains control character U+000A"},
		{"escape character", "/a\x1bb.csv", "contains control character U+001B"},
		{"hidden", "/.hidden", "starts with '.'"},
		{"leading dash", "/-rf", "starts with '-'"},
		{"look-alike", "/p\u0430yroll.csv", "contains non-ASCII character U+0430"},
		{"RTL override", "/a\u202ecsv.exe", "contains non-ASCII character U+202E"},
		{"invalid UTF-8", "/\xff.csv", "not valid UTF-8"},
		{"too long", "/" + strings.Repeat("n", 256), "longer than 255 bytes"},
		{"too deep", strings.Repeat("/d", 17), "more than 16 directory levels"},
		{"bad directory", "/bad dir/x.csv", "contains a space"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := ts.refusals(t, "name-policy")
			code, msg := r.OpenWrite(tt.p)
			if code != sftptest.FXPermissionDenied {
				t.Errorf("OPEN: status %d %q, want permission denied", code, msg)
			}
			if !strings.Contains(msg, tt.rule) || !strings.Contains(msg, "allowed:") {
				t.Errorf("OPEN: message %q does not name the rule %q", msg, tt.rule)
			}
			if code, msg := r.Status(fxpMkdir, tt.p, uint32(0)); code != sftptest.FXPermissionDenied || !strings.Contains(msg, tt.rule) {
				t.Errorf("MKDIR: status %d %q", code, msg)
			}
			if _, err := c.Create(tt.p); !errors.Is(err, os.ErrPermission) {
				t.Errorf("Create: err = %v, want permission denied", err)
			}
			if after := ts.refusals(t, "name-policy"); after != before+3 {
				t.Errorf("%d name-policy refusals audited, want 3", after-before)
			}
		})
	}
	if trs := ts.transfers(t, uploader); len(trs) != 0 {
		t.Errorf("refused names created transfers: %+v", trs)
	}
	ts.assertNothingLanded(t)
}

func TestUploadOnlyPermissions(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	c := ts.sftpClient(t, uploader)
	r := ts.rawClient(t, uploader)
	data := []byte("payload\n")
	if err := putFile(c, "/data.csv", data); err != nil {
		t.Fatal(err)
	}
	received := ts.transferAt(t, uploader, "/data.csv")

	t.Run("cannot read back", func(t *testing.T) {
		if _, err := c.Open("/data.csv"); !errors.Is(err, os.ErrPermission) {
			t.Errorf("Open for reading: err = %v, want permission denied", err)
		}
		if code, msg := r.Status(fxpOpen, "/data.csv", uint32(sftptest.FXFRead), uint32(0)); code != sftptest.FXPermissionDenied || !strings.Contains(msg, "write-only") {
			t.Errorf("OPEN for reading: status %d %q", code, msg)
		}
		// Opened for reading and writing (as Create does), reads fail.
		f, err := c.Create("/rw.csv")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.ReadAt(make([]byte, 4), 0); err == nil {
			t.Error("read from an upload handle succeeded")
		}
		f.Close()
	})

	t.Run("cannot remove a received file", func(t *testing.T) {
		if err := c.Remove("/data.csv"); err == nil {
			t.Error("Remove succeeded")
		}
		if code, msg := r.Status(fxpRemove, "/data.csv"); code != sftptest.FXPermissionDenied || !strings.Contains(msg, ErrProcessing.Error()) {
			t.Errorf("REMOVE: status %d %q", code, msg)
		}
		if got := ts.get(t, received.ID); got.State != ledger.Received || got.Path != "/data.csv" {
			t.Errorf("after Remove: %+v", got)
		}
	})

	t.Run("cannot rename a received file", func(t *testing.T) {
		if err := c.Rename("/data.csv", "/other.csv"); err == nil {
			t.Error("Rename succeeded")
		}
		if code, msg := r.Status(fxpRename, "/data.csv", "/other.csv"); code != sftptest.FXPermissionDenied || !strings.Contains(msg, ErrProcessing.Error()) {
			t.Errorf("RENAME: status %d %q", code, msg)
		}
		if got := ts.get(t, received.ID); got.Path != "/data.csv" {
			t.Errorf("the received file moved to %s", got.Path)
		}
	})

	t.Run("links are not supported", func(t *testing.T) {
		if code, _ := r.Status(fxpSymlink, "/data.csv", "/l"); code != sftptest.FXOpUnsupported {
			t.Errorf("SYMLINK: status %d, want op unsupported", code)
		}
		if code, _ := r.Status(fxpExtended, "hardlink@openssh.com", "/data.csv", "/l"); code != sftptest.FXOpUnsupported {
			t.Errorf("hardlink: status %d, want op unsupported", code)
		}
		if _, err := c.ReadLink("/data.csv"); err == nil {
			t.Error("ReadLink succeeded")
		}
	})

	for _, rename := range []struct {
		name string
		do   func(from, to string) error
	}{
		{"Rename", c.Rename},
		{"PosixRename", c.PosixRename},
	} {
		t.Run(rename.name+" of a temporary name hands the upload on", func(t *testing.T) {
			base := strings.ToLower(rename.name)
			part := source(5000)
			tmp := "/" + base + ".csv.filepart"
			if err := putFile(c, tmp, part); err != nil {
				t.Fatal(err)
			}
			held := ts.transferAt(t, uploader, tmp)
			if held.State != ledger.Receiving || held.Size != int64(len(part)) || held.SHA256 != sha256Hex(part) {
				t.Errorf("held upload: %+v", held)
			}
			if infos, err := c.ReadDir("/"); err != nil || !slices.Contains(fileNames(infos), base+".csv.filepart") {
				t.Errorf("ReadDir does not list the held upload: %v, %v", fileNames(infos), err)
			}
			// Clients set times on the temporary file before renaming it.
			if err := c.Chtimes(tmp, time.Now(), time.Now()); err != nil {
				t.Errorf("Chtimes on the held upload: %v", err)
			}
			// Renaming to another temporary name keeps holding it.
			tmp2 := "/" + base + ".2.filepart"
			if err := rename.do(tmp, tmp2); err != nil {
				t.Fatalf("rename to another temporary name: %v", err)
			}
			if got := ts.get(t, held.ID); got.State != ledger.Receiving || got.Path != tmp2 {
				t.Errorf("after a rename to a temporary name: state %s path %s", got.State, got.Path)
			}
			final := "/" + base + ".csv"
			if err := rename.do(tmp2, final); err != nil {
				t.Fatalf("rename to the final name: %v", err)
			}
			got := ts.get(t, held.ID)
			if got.Path != final {
				t.Errorf("path after rename = %s, want %s", got.Path, final)
			}
			ts.checkReceived(t, got, part)
			if err := rename.do(final, "/"+base+".again.csv"); err == nil {
				t.Error("renamed the upload again after it was handed on")
			}
		})
	}

	// WinSCP resumes a temporary file by reopening it and writing from
	// where it stopped. Until resume exists that write is refused as a gap,
	// and the half held before must not be renamed into place after it.
	t.Run("a reopened temporary name cannot be renamed with its first part", func(t *testing.T) {
		tmp := "/resumed.csv.filepart"
		first := source(2 << 10)
		if err := putFile(c, tmp, first); err != nil {
			t.Fatal(err)
		}
		held := ts.transferAt(t, uploader, tmp)
		f, err := c.OpenFile(tmp, os.O_RDWR)
		if err != nil {
			t.Fatal(err)
		}
		_, werr := f.WriteAt(source(2<<10), 2<<10)
		cerr := f.Close()
		if werr == nil && cerr == nil {
			t.Fatal("the write past a fresh upload's start was accepted")
		}
		if err := c.Rename(tmp, "/resumed.csv"); err == nil {
			t.Error("renamed the temporary name after its rewrite failed")
		}
		if got := ts.get(t, held.ID); got.State != ledger.Failed {
			t.Errorf("the first part is %s, want failed", got.State)
		}
		for _, tr := range ts.transfers(t, uploader) {
			if tr.Path == "/resumed.csv" {
				t.Errorf("a transfer at the final name: %+v", tr)
			}
		}
	})

	t.Run("Remove drops a held upload", func(t *testing.T) {
		if err := putFile(c, "/drop.csv.filepart", []byte("x")); err != nil {
			t.Fatal(err)
		}
		held := ts.transferAt(t, uploader, "/drop.csv.filepart")
		if err := c.Remove("/drop.csv.filepart"); err != nil {
			t.Fatalf("Remove of a held upload: %v", err)
		}
		got := ts.get(t, held.ID)
		if got.State != ledger.Failed || !strings.Contains(got.Error, "removed by the supplier") {
			t.Errorf("after Remove: state %s error %q", got.State, got.Error)
		}
		if _, ok := ts.landed(t)[held.LandingKey]; ok {
			t.Error("the removed upload is still in landing")
		}
	})

	t.Run("a held upload is dropped when the session ends", func(t *testing.T) {
		c2, err := sftp.NewClient(ts.connect(t, uploader))
		if err != nil {
			t.Fatal(err)
		}
		if err := putFile(c2, "/left.csv.filepart", []byte("left")); err != nil {
			t.Fatal(err)
		}
		held := ts.transferAt(t, uploader, "/left.csv.filepart")
		c2.Close()
		eventually(t, "the abandoned upload to fail", func() bool {
			return ts.get(t, held.ID).State == ledger.Failed
		})
		if got := ts.get(t, held.ID); !strings.Contains(got.Error, "session ended") {
			t.Errorf("error %q", got.Error)
		}
		eventually(t, "the abandoned upload to leave landing", func() bool {
			_, ok := ts.landed(t)[held.LandingKey]
			return !ok
		})
	})
}

func TestEgressSupplier(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	c := ts.sftpClient(t, egresser)
	r := ts.rawClient(t, egresser)

	if infos, err := c.ReadDir("/"); err != nil || !slices.Equal(fileNames(infos), []string{"download", "upload"}) {
		t.Fatalf("ReadDir(/) = %v, %v", fileNames(infos), err)
	}
	// Names the policy refuses are not listed: they could not be fetched.
	if infos, err := c.ReadDir("/download"); err != nil || !slices.Equal(fileNames(infos), []string{"2026", "report.csv", "sub"}) {
		t.Errorf("ReadDir(/download) = %v, %v", fileNames(infos), err)
	}
	for p, want := range map[string]string{
		"/download/report.csv":       egressFiles["report.csv"],
		"/download/sub/inner.csv":    egressFiles["sub/inner.csv"],
		"/download/2026/01/deep.txt": egressFiles["2026/01/deep.txt"],
	} {
		f, err := c.Open(p)
		if err != nil {
			t.Errorf("Open(%s): %v", p, err)
			continue
		}
		got, err := io.ReadAll(f)
		f.Close()
		if err != nil || string(got) != want {
			t.Errorf("read %s = %q, %v; want %q", p, got, err, want)
		}
	}
	// Each download read whole is an egress transfer, delivered.
	downloads := 0
	for _, tr := range ts.transfers(t, egresser) {
		want := egressFiles[strings.TrimPrefix(tr.Path, "/")]
		switch {
		case tr.Direction != ledger.Egress:
			t.Errorf("transfer %+v before any upload", tr)
		case tr.State != ledger.Delivered || tr.Size != int64(len(want)) || tr.SHA256 != sha256Hex([]byte(want)):
			t.Errorf("download %s: state %s, size %d, sha256 %s; want delivered, %d bytes", tr.Path, tr.State, tr.Size, tr.SHA256, len(want))
		}
		downloads++
	}
	if downloads != 3 {
		t.Errorf("%d downloads recorded, want 3", downloads)
	}
	if fi, err := c.Stat("/download/report.csv"); err != nil || fi.Size() != int64(len(egressFiles["report.csv"])) {
		t.Errorf("Stat(/download/report.csv) = %v, %v", fi, err)
	}
	if fi, err := c.Stat("/download/sub"); err != nil || !fi.IsDir() {
		t.Errorf("Stat(/download/sub) = %v, %v", fi, err)
	}
	if _, err := c.Open("/download/missing.csv"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open of a missing download: err = %v", err)
	}
	if _, err := c.Open("/download/sub"); err == nil {
		t.Error("opened a directory for reading")
	}

	// Nothing can be written outside /upload.
	for _, p := range []string{"/download/new.csv", "/download/report.csv", "/new.csv", "/download"} {
		if err := putFile(c, p, []byte("x")); err == nil {
			t.Errorf("upload to %s succeeded", p)
		}
	}
	if code, msg := r.OpenWrite("/download/new.csv"); code != sftptest.FXPermissionDenied || !strings.Contains(msg, "read-only") {
		t.Errorf("OPEN /download/new.csv for writing: status %d %q", code, msg)
	}
	for name, err := range map[string]error{
		"Mkdir /download/d": c.Mkdir("/download/d"),
		"Mkdir /d":          c.Mkdir("/d"),
		"Remove report":     c.Remove("/download/report.csv"),
		"Rename report":     c.Rename("/download/report.csv", "/upload/report.csv"),
		"Chmod report":      c.Chmod("/download/report.csv", 0o777),
	} {
		if err == nil {
			t.Errorf("%s succeeded", name)
		}
	}
	if b, err := os.ReadFile(filepath.Join(ts.egressDir, "report.csv")); err != nil || string(b) != egressFiles["report.csv"] {
		t.Errorf("the egress store changed: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(ts.egressDir, "new.csv")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("new.csv appeared in the egress store: %v", err)
	}

	data := []byte("uploaded by an egress supplier\n")
	if err := putFile(c, "/upload/in.csv", data); err != nil {
		t.Fatalf("upload to /upload: %v", err)
	}
	tr := ts.transferAt(t, egresser, "/in.csv")
	if tr.Direction != ledger.Ingress {
		t.Errorf("the upload is recorded as %s", tr.Direction)
	}
	ts.checkReceived(t, tr, data)
	if infos, err := c.ReadDir("/upload"); err != nil || !slices.Equal(fileNames(infos), []string{"in.csv"}) {
		t.Errorf("ReadDir(/upload) = %v, %v", fileNames(infos), err)
	}
	if _, err := c.Open("/upload/in.csv"); !errors.Is(err, os.ErrPermission) {
		t.Errorf("read back from /upload: err = %v, want permission denied", err)
	}
}

func TestAuthRefused(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	tests := []struct {
		name   string
		user   string
		key    ssh.Signer
		reason string
	}{
		{"unknown user", "nobody", ts.keys[uploader], "unknown-user"},
		{"wrong key", uploader, newClientKey(t), "key-not-authorized"},
		{"another supplier's key", uploader, ts.keys[egresser], "key-not-authorized"},
		{"IP not allowed", outsider, ts.keys[outsider], "ip-not-allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := ts.dial(tt.user, tt.key)
			if err == nil {
				conn.Close()
				t.Fatal("login succeeded")
			}
			if !strings.Contains(err.Error(), "unable to authenticate") {
				t.Errorf("err = %v", err)
			}
			found := false
			for _, ev := range ts.events(t, "auth.fail") {
				if ev.Actor == tt.user && ev.Detail["reason"] == tt.reason && ev.RemoteIP == "127.0.0.1" {
					found = true
				}
			}
			if !found {
				t.Errorf("no auth.fail event for %s with reason %s", tt.user, tt.reason)
			}
			if got := testutil.ToFloat64(ts.metrics.authFailures.WithLabelValues(tt.reason)); got < 1 {
				t.Errorf("auth failures{%s} = %v", tt.reason, got)
			}
		})
	}
	for _, ev := range ts.events(t, "auth.ok") {
		t.Errorf("a refused login was recorded as auth.ok: %+v", ev)
	}

	ts.connect(t, uploader)
	eventually(t, "an auth.ok event", func() bool { return len(ts.events(t, "auth.ok")) == 1 })
}

// TestSessionExitStatus: the subsystem ends with an exit status, as
// OpenSSH's does: 0 when the client ends the session, 1 when airlock ends
// it.
func TestSessionExitStatus(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	conn := ts.connect(t, uploader)
	for _, tt := range []struct {
		name string
		send []byte
		want int
	}{
		{"the client ends it", sftptest.Packet(sftptest.FXPInit, 3), 0},
		{"a packet too long ends it", binary.BigEndian.AppendUint32(nil, maxPacket+1), 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ch, reqs, err := conn.OpenChannel("session", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ch.Close()
			if ok, err := ch.SendRequest("subsystem", true, ssh.Marshal(struct{ Name string }{"sftp"})); !ok || err != nil {
				t.Fatalf("sftp subsystem refused: %v", err)
			}
			go func() { _, _ = io.Copy(io.Discard, ch) }()
			if _, err := ch.Write(tt.send); err != nil {
				t.Fatal(err)
			}
			if err := ch.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			for req := range reqs {
				var exit struct{ Status uint32 }
				if req.Type != "exit-status" || ssh.Unmarshal(req.Payload, &exit) != nil {
					continue
				}
				if int(exit.Status) != tt.want {
					t.Fatalf("exit status %d, want %d", exit.Status, tt.want)
				}
				return
			}
			t.Fatal("the channel closed without an exit status")
		})
	}
}

func TestSessionRequestsRefused(t *testing.T) {
	t.Parallel()
	// Sessions end asynchronously after their Close: room for all of them.
	ts := newTestServer(t, serverOptions{maxChannels: 16})
	conn := ts.connect(t, uploader)

	for _, tt := range []struct {
		name string
		do   func(s *ssh.Session) error
	}{
		{"exec", func(s *ssh.Session) error { return s.Run("cat /etc/passwd") }},
		{"shell", func(s *ssh.Session) error { return s.Shell() }},
		{"pty", func(s *ssh.Session) error { return s.RequestPty("xterm", 24, 80, ssh.TerminalModes{}) }},
		{"other subsystem", func(s *ssh.Session) error { return s.RequestSubsystem("netconf") }},
		{"second sftp subsystem", func(s *ssh.Session) error {
			if err := s.RequestSubsystem("sftp"); err != nil {
				return errors.New("first sftp subsystem refused: " + err.Error())
			}
			err := s.RequestSubsystem("sftp")
			if err == nil {
				return nil
			}
			if errors.Is(err, io.EOF) {
				return errors.New("channel closed")
			}
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := conn.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			err = tt.do(s)
			if err == nil {
				t.Fatal("request accepted")
			}
			if strings.HasPrefix(err.Error(), "first sftp") || err.Error() == "channel closed" {
				t.Fatal(err)
			}
		})
	}

	t.Run("direct-tcpip", func(t *testing.T) {
		_, err := conn.Dial("tcp", "127.0.0.1:22")
		var oce *ssh.OpenChannelError
		if !errors.As(err, &oce) || oce.Reason != ssh.Prohibited {
			t.Fatalf("err = %v, want the channel rejected as prohibited", err)
		}
	})
	t.Run("tcpip-forward", func(t *testing.T) {
		if ln, err := conn.Listen("tcp", "127.0.0.1:0"); err == nil {
			ln.Close()
			t.Fatal("remote forwarding accepted")
		}
	})

	// The connection still serves SFTP afterwards.
	c, err := sftp.NewClient(conn)
	if err != nil {
		t.Fatalf("sftp after refused requests: %v", err)
	}
	defer c.Close()
	if _, err := c.ReadDir("/"); err != nil {
		t.Fatal(err)
	}
}

// TestUploadRecorded: the ledger hears of an upload when it ends, or once
// it has run recordAfter; either way its events are the same.
func TestUploadRecorded(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		recordAfter time.Duration
		whileOpen   ledger.State // "": not recorded while the file is open
	}{
		{"ends first", time.Hour, ""},
		{"runs long", 50 * time.Millisecond, ledger.Receiving},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, serverOptions{recordAfter: tt.recordAfter})
			c := ts.sftpClient(t, uploader)
			f, err := c.Create("/data.csv")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write([]byte("a,b\n")); err != nil {
				t.Fatal(err)
			}
			recorded := func() []ledger.Transfer {
				trs, err := ts.ledger.List(t.Context(), ledger.Filter{Supplier: uploader})
				if err != nil {
					t.Fatal(err)
				}
				return trs
			}
			if tt.whileOpen == "" {
				if trs := recorded(); len(trs) != 0 {
					t.Fatalf("recorded while open: %+v", trs)
				}
			} else {
				eventually(t, "the open upload to be recorded", func() bool { return len(recorded()) == 1 })
				if got := recorded()[0].State; got != tt.whileOpen {
					t.Errorf("while open: state %s, want %s", got, tt.whileOpen)
				}
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			tr := ts.onlyTransfer(t, uploader)
			ts.checkReceived(t, tr, []byte("a,b\n"))
			evs, err := ts.ledger.Events(t.Context(), tr.ID, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 2 || evs[0].Kind != "upload.start" || evs[1].Kind != "upload.finish" || !evs[0].At.Equal(tr.CreatedAt) {
				t.Errorf("events of the transfer: %+v", evs)
			}
			// It landed under its session's prefix, and the session is
			// forgotten when it ends.
			sessions, err := ts.ledger.UploadSessions(t.Context(), "test")
			if err != nil || len(sessions) != 1 || tr.LandingKey != sessions[0].LandingPrefix()+tr.ID {
				t.Errorf("landing key %q, open sessions %+v, %v", tr.LandingKey, sessions, err)
			}
			c.Close()
			eventually(t, "the upload session to end", func() bool {
				sessions, err := ts.ledger.UploadSessions(t.Context(), "test")
				return err == nil && len(sessions) == 0
			})
		})
	}
}

func TestConnectionDroppedMidUpload(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{maxFileSize: 1 << 40})
	conn, err := ts.dial(uploader, ts.keys[uploader])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c, err := sftp.NewClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	f, err := c.Create("/dropped.bin")
	if err != nil {
		t.Fatal(err)
	}
	writeErr := make(chan error, 1)
	go func() {
		// Write, not io.Copy: the client's ReadFrom takes an io.EOF from
		// the closed connection for the end of its source and returns nil.
		chunk := make([]byte, 32<<10)
		for {
			if _, err := f.Write(chunk); err != nil {
				writeErr <- err
				return
			}
		}
	}()
	// The ledger hears of an upload when the session that makes it asks
	// about it, or after recordAfter.
	if _, err := c.Stat("/dropped.bin"); err != nil {
		t.Fatal(err)
	}
	tr := ts.transferAt(t, uploader, "/dropped.bin")
	eventually(t, "the upload to stream into landing", func() bool {
		for key, b := range ts.landed(t) {
			if strings.HasPrefix(key, storage.StagingDir+"/") && len(b) >= 256<<10 {
				return true
			}
		}
		return false
	})
	conn.Close() // mid-write
	select {
	case err := <-writeErr:
		if err == nil {
			t.Error("writing on after the connection closed succeeded")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the writer did not notice the closed connection")
	}

	eventually(t, "the transfer to fail", func() bool { return ts.get(t, tr.ID).State == ledger.Failed })
	if got := ts.get(t, tr.ID); !strings.Contains(got.Error, "connection") {
		t.Errorf("error %q does not mention the connection", got.Error)
	} else if got.Size < 256<<10 {
		t.Errorf("failed row: size %d, want the %d bytes or more seen in landing", got.Size, 256<<10)
	}
	eventually(t, "landing to be empty", func() bool { return len(ts.landed(t)) == 0 })
}

func TestRecoverInterrupted(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	ctx := context.Background()
	begin := func(node, key string) ledger.Transfer {
		tr, err := ts.ledger.Begin(ctx, ledger.NewTransfer(ledger.Transfer{
			Supplier: uploader, Path: "/" + node + ".csv", LandingKey: key, Node: node, RemoteIP: "127.0.0.1",
		}), ledger.Event{})
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	mine := begin("test", uploader+"/INTERRUPTEDUPLOAD")
	theirs := begin("other", uploader+"/OTHERNODEUPLOAD")
	leftover := filepath.Join(ts.landingDir, uploader, "INTERRUPTEDUPLOAD.123.tmp")
	otherLeftover := filepath.Join(ts.landingDir, uploader, "OTHERNODEUPLOAD.456.tmp")
	writeFile(t, leftover, "half an upload")
	writeFile(t, otherLeftover, "another node's upload in progress")

	if err := ts.srv.RecoverInterrupted(ctx); err != nil {
		t.Fatalf("RecoverInterrupted: %v", err)
	}
	got := ts.get(t, mine.ID)
	if got.State != ledger.Failed || !strings.Contains(got.Error, "interrupted") {
		t.Errorf("interrupted upload: state %s error %q", got.State, got.Error)
	}
	if _, err := os.Stat(leftover); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("staged leftover still there: %v", err)
	}
	if got := ts.get(t, theirs.ID); got.State != ledger.Receiving {
		t.Errorf("another node's upload: state %s, want receiving", got.State)
	}
	if _, err := os.Stat(otherLeftover); err != nil {
		t.Errorf("another node's staged upload was touched: %v", err)
	}
	// Running it again finds nothing to do.
	if err := ts.srv.RecoverInterrupted(ctx); err != nil {
		t.Fatalf("second RecoverInterrupted: %v", err)
	}
}

// TestRecoverUnrecorded: at restart a node removes what its upload
// sessions left in landing that no transfer accounts for, keeps what one
// does, and leaves other nodes' sessions alone.
func TestRecoverUnrecorded(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	ctx := t.Context()
	session := func(node string) ledger.UploadSession {
		us, err := ts.ledger.StartUploads(ctx, node, uploader)
		if err != nil {
			t.Fatal(err)
		}
		return us
	}
	landed := func(key string) string {
		p := filepath.Join(ts.landingDir, filepath.FromSlash(key))
		writeFile(t, p, "bytes of "+key)
		return p
	}
	mine, theirs := session("test"), session("other")
	orphan := landed(mine.LandingPrefix() + ledger.NewTransfer(ledger.Transfer{}).ID)
	theirOrphan := landed(theirs.LandingPrefix() + ledger.NewTransfer(ledger.Transfer{}).ID)
	kept := ledger.NewTransfer(ledger.Transfer{Supplier: uploader, Path: "/kept.csv", Node: "test"})
	kept.LandingKey = mine.LandingPrefix() + kept.ID
	if _, err := ts.ledger.Record(ctx, kept, ledger.Event{}, ledger.Received, ledger.Change{}, ledger.Event{Kind: "upload.finish"}); err != nil {
		t.Fatal(err)
	}
	keptFile := landed(kept.LandingKey)

	if err := ts.srv.RecoverInterrupted(ctx); err != nil {
		t.Fatalf("RecoverInterrupted: %v", err)
	}
	if _, err := os.Stat(orphan); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("an unrecorded upload is still in landing: %v", err)
	}
	for _, p := range []string{keptFile, theirOrphan} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("removed %s: %v", p, err)
		}
	}
	if got, err := ts.ledger.UploadSessions(ctx, "test"); err != nil || len(got) != 0 {
		t.Errorf("this node's sessions after recovery: %+v, %v; want none", got, err)
	}
	if got, err := ts.ledger.UploadSessions(ctx, "other"); err != nil || len(got) != 1 {
		t.Errorf("the other node's sessions after recovery: %+v, %v; want its one", got, err)
	}
	evs, err := ts.ledger.Events(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	discarded := 0
	for _, ev := range evs {
		if ev.Kind == "upload.discard" && ev.Detail["reason"] == "interrupted" {
			discarded++
		}
	}
	if discarded != 1 {
		t.Errorf("%d upload.discard events, want 1", discarded)
	}
}

// TestServeWaitsForBookkeeping: Serve returns only once the sessions it
// ended have recorded what became of their uploads.
func TestServeWaitsForBookkeeping(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	c := ts.sftpClient(t, uploader)
	f, err := c.Create("/cut.bin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(source(100_000)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stat("/cut.bin"); err != nil {
		t.Fatal(err)
	}
	tr := ts.transferAt(t, uploader, "/cut.bin")
	ts.stop(t)
	if got := ts.get(t, tr.ID); got.State != ledger.Failed {
		// Let the session finish its bookkeeping before the cleanup
		// closes the ledger under it.
		eventually(t, "the upload to be recorded as failed after all", func() bool {
			return ts.get(t, tr.ID).State == ledger.Failed
		})
		t.Errorf("right after Serve returned the upload was %s, want failed", got.State)
	}
	ts.assertNothingLanded(t)
}

// TestRemoveAreaRoot: the top of an area is not the client's to remove.
func TestRemoveAreaRoot(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	tests := []struct{ user, dir string }{
		{uploader, "/"},
		{egresser, "/upload"},
		{egresser, "/download"},
		{egresser, "/"},
	}
	for _, tt := range tests {
		t.Run(tt.user+" "+tt.dir, func(t *testing.T) {
			c := ts.sftpClient(t, tt.user)
			err := c.RemoveDirectory(tt.dir)
			if err == nil {
				t.Fatalf("RemoveDirectory(%s) succeeded", tt.dir)
			}
		})
	}
}

// TestUploadOpenFails covers the two halves of opening an upload, the
// ledger row and the staging file, each failing while the other succeeds:
// the client is refused, and neither half is left behind.
func TestUploadOpenFails(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		breakIt func(t *testing.T, ts *testServer)
		// wantFailed: the ledger row was written, so it must say why the
		// upload failed; otherwise there must be no row at all.
		wantFailed bool
	}{
		{
			name: "landing refuses",
			breakIt: func(t *testing.T, ts *testServer) {
				// A file where the staging directory belongs.
				writeFile(t, filepath.Join(ts.landingDir, storage.StagingDir), "in the way")
			},
			wantFailed: true,
		},
		{
			name: "ledger refuses",
			breakIt: func(t *testing.T, ts *testServer) {
				if _, err := ts.ledger.DB().ExecContext(t.Context(),
					`CREATE TRIGGER refuse_transfers BEFORE INSERT ON transfers BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, serverOptions{})
			c := ts.sftpClient(t, uploader)
			tt.breakIt(t, ts)

			if err := putFile(c, "/data.csv", []byte("a,b\n")); err == nil {
				t.Fatal("upload succeeded")
			}
			trs := ts.transfers(t, uploader)
			switch {
			case tt.wantFailed && (len(trs) != 1 || trs[0].State != ledger.Failed || !strings.Contains(trs[0].Error, "stage")):
				t.Errorf("transfers %+v, want one failed with the staging error", trs)
			case !tt.wantFailed && len(trs) != 0:
				t.Errorf("transfers %+v, want none", trs)
			}
			for key := range ts.landed(t) {
				if key != storage.StagingDir {
					t.Errorf("landing holds %s after a refused open", key)
				}
			}
		})
	}
}
