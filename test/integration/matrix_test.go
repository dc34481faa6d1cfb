package integration

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/sync/errgroup"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/sftptest"
)

// The last two clients of issue 20's matrix: Go's pkg/sftp writing each
// file with concurrent, out-of-order requests, and WinSCP's temporary name
// flow, simulated with paramiko.

// Each file goes up in chunks handed to chunkWorkers goroutines in an
// order reversed within each chunkGroup, so that its writes leave the
// client out of order but within airlock's reorder window (4 MiB).
const (
	chunkSize    = 64 << 10 // two requests of pkg/sftp's 32 KiB, sent at once
	chunkGroup   = 16
	chunkWorkers = 4
	filesAtOnce  = 4
)

// TestPkgSFTPConcurrentWrites: pkg/sftp with concurrent writes uploads the
// tree, several files at once, each with concurrent WriteAt calls out of
// order; every file is delivered once. A second pass that stats each file
// and skips it when the size matches uploads nothing.
func TestPkgSFTPConcurrentWrites(t *testing.T) {
	t.Parallel()
	g, key := startAcme(t, gatewayOpts{}, supplierSpec{})
	dir, sums := writeTree(t)
	c, wire := dialWatched(t, g, key, sftp.UseConcurrentWrites(true), sftp.MaxConcurrentRequestsPerFile(8))

	rels := slices.Sorted(maps.Keys(clientTree))
	for _, rel := range rels {
		if err := c.MkdirAll(path.Dir("/" + rel)); err != nil {
			t.Fatalf("MkdirAll for %s: %v", rel, err)
		}
	}
	var eg errgroup.Group
	eg.SetLimit(filesAtOnce)
	for _, rel := range rels {
		eg.Go(func() error { return uploadOutOfOrder(c, filepath.Join(dir, filepath.FromSlash(rel)), "/"+rel) })
	}
	if err := eg.Wait(); err != nil {
		t.Fatalf("upload: %v\n%s", err, g.logTail(20))
	}
	assertTreeDelivered(t, g, sums)

	// Any file of more than chunkWorkers chunks has a chunk sent before
	// one below it, whatever the scheduling: the workers cannot hold back
	// every chunk above the lowest.
	want := 0
	for _, size := range clientTree {
		if size > chunkWorkers*chunkSize {
			want++
		}
	}
	files, writes := wire.outOfOrder()
	t.Logf("%d writes of %d files reached airlock behind a later write of the same file", writes, files)
	if files < want {
		t.Errorf("%d files were written out of order, want at least %d", files, want)
	}

	// The second pass sends what airlock does not show at its size:
	// nothing.
	rows := len(g.transfers())
	var sent []string
	for _, rel := range rels {
		if fi, err := c.Stat("/" + rel); err == nil && fi.Size() == clientTree[rel] {
			continue
		}
		sent = append(sent, rel)
		if err := uploadOutOfOrder(c, filepath.Join(dir, filepath.FromSlash(rel)), "/"+rel); err != nil {
			t.Errorf("second pass: %v", err)
		}
	}
	if got := len(g.transfers()); len(sent) > 0 || got != rows {
		t.Errorf("the second pass sent %v again, making %d new transfers; want none", sent, got-rows)
	}
	g.auditVerifies(t)
}

// uploadOutOfOrder writes local to remote in chunks, chunkWorkers at once,
// in the order chunkOrder gives.
func uploadOutOfOrder(c *sftp.Client, local, remote string) error {
	src, err := os.Open(local)
	if err != nil {
		return err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	dst, err := c.Create(remote)
	if err != nil {
		return fmt.Errorf("create %s: %w", remote, err)
	}
	offsets := make(chan int64)
	go func() {
		defer close(offsets)
		for _, off := range chunkOrder(fi.Size()) {
			offsets <- off
		}
	}()
	var eg errgroup.Group
	for range chunkWorkers {
		eg.Go(func() error {
			buf := make([]byte, chunkSize)
			var err error
			for off := range offsets { // drained even after an error
				if err != nil {
					continue
				}
				n, rerr := src.ReadAt(buf, off)
				if rerr != nil && !errors.Is(rerr, io.EOF) {
					err = rerr
					continue
				}
				if _, werr := dst.WriteAt(buf[:n], off); werr != nil {
					err = fmt.Errorf("write %s at %d: %w", remote, off, werr)
				}
			}
			return err
		})
	}
	err = eg.Wait()
	return errors.Join(err, dst.Close())
}

// chunkOrder lists the offsets of a file's chunks, reversed within each
// group of chunkGroup.
func chunkOrder(size int64) []int64 {
	var offs []int64
	for start := int64(0); start < size; start += chunkGroup * chunkSize {
		end := min(size, start+chunkGroup*chunkSize)
		for off := (end - 1) / chunkSize * chunkSize; off >= start; off -= chunkSize {
			offs = append(offs, off)
		}
	}
	return offs
}

// dialWatched opens a pkg/sftp client as acme whose requests pass through
// a wireWrites on their way to airlock.
func dialWatched(t *testing.T, g *gateway, key clientKey, opts ...sftp.ClientOption) (*sftp.Client, *wireWrites) {
	t.Helper()
	conn, err := sshDial(g, "acme", key)
	if err != nil {
		t.Fatalf("ssh login as acme: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	sess, err := conn.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.RequestSubsystem("sftp"); err != nil {
		t.Fatal(err)
	}
	in, err := sess.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := sess.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	wire := &wireWrites{WriteCloser: in, furthest: map[string]int64{}, behind: map[string]int{}}
	c, err := sftp.NewClientPipe(out, wire, opts...)
	if err != nil {
		t.Fatalf("pkg/sftp on acme: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, wire
}

// wireWrites reads the SFTP requests a client sends, as they go out, and
// counts, for each file, the writes sent below the offset of an earlier
// write: the order in which airlock receives them.
type wireWrites struct {
	io.WriteCloser

	mu       sync.Mutex
	head     []byte           // the start of the request being read
	skip     int              // bytes of the request left after its head
	furthest map[string]int64 // by open handle: the highest offset written
	behind   map[string]int   // by open handle: writes below furthest
	files    int              // closed files with writes behind
	writes   int              // their writes behind
}

// wireHead is as much of a request as is read: its length, type, id, a
// handle of at most 256 bytes, an offset.
const wireHead = 4 + 1 + 4 + 4 + 256 + 8

func (w *wireWrites) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.scan(p)
	w.mu.Unlock()
	return w.WriteCloser.Write(p)
}

func (w *wireWrites) scan(p []byte) {
	for len(p) > 0 {
		if w.skip > 0 {
			n := min(w.skip, len(p))
			w.skip, p = w.skip-n, p[n:]
			continue
		}
		want := 4
		if len(w.head) >= 4 {
			want = min(wireHead, 4+int(binary.BigEndian.Uint32(w.head)))
		}
		n := min(want-len(w.head), len(p))
		w.head, p = append(w.head, p[:n]...), p[n:]
		if len(w.head) < 4 {
			continue
		}
		total := 4 + int(binary.BigEndian.Uint32(w.head))
		if len(w.head) < min(wireHead, total) {
			continue
		}
		w.skip = total - len(w.head)
		w.request(w.head)
		w.head = w.head[:0]
	}
}

// request notes a write's offset, or a close's outcome, by handle.
func (w *wireWrites) request(r []byte) {
	if len(r) < 13 || r[4] != sftptest.FXPWrite && r[4] != sftptest.FXPClose {
		return
	}
	n := int(binary.BigEndian.Uint32(r[9:]))
	if len(r) < 13+n {
		return
	}
	handle := string(r[13 : 13+n])
	if r[4] == sftptest.FXPClose {
		if b := w.behind[handle]; b > 0 {
			w.files, w.writes = w.files+1, w.writes+b
		}
		delete(w.behind, handle)
		delete(w.furthest, handle)
		return
	}
	if len(r) < 13+n+8 {
		return
	}
	off := int64(binary.BigEndian.Uint64(r[13+n:]))
	if off < w.furthest[handle] {
		w.behind[handle]++
	}
	w.furthest[handle] = max(w.furthest[handle], off)
}

// outOfOrder returns how many closed files had writes sent behind a later
// one, and how many such writes.
func (w *wireWrites) outOfOrder() (files, writes int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.files, w.writes
}

// winscpTime is the modification time the WinSCP simulation sets on each
// file, as WinSCP keeps the source's by default.
var winscpTime = syncTime

// TestWinSCPSimulated: paramiko uploads the tree as WinSCP does, each file
// to name.filepart, its time set, then renamed to name. Every file is
// delivered once under its name, with that time in the supplier's view;
// no .filepart name is ever delivered or left listed.
func TestWinSCPSimulated(t *testing.T) {
	t.Parallel()
	python := requireParamiko(t)
	g, key := startAcme(t, gatewayOpts{}, supplierSpec{})
	dir, sums := writeTree(t)

	out, err := exec.Command(python, "testdata/winscp_upload.py", "127.0.0.1", g.port(), "acme", key.path,
		"tree", dir, fmt.Sprint(winscpTime.Unix())).CombinedOutput()
	if err != nil {
		t.Fatalf("winscp simulation: %v\n%s\n%s", err, out, g.logTail(20))
	}
	t.Logf("winscp simulation: %s", out)
	assertTreeDelivered(t, g, sums)

	c, _ := dialSFTP(t, g, "acme", key)
	listed := 0
	for walk := c.Walk("/"); walk.Step(); {
		if err := walk.Err(); err != nil {
			t.Fatalf("walk %s: %v", walk.Path(), err)
		}
		fi := walk.Stat()
		switch {
		case strings.HasSuffix(walk.Path(), ".filepart"):
			t.Errorf("%s is still listed", walk.Path())
		case fi.Mode().IsRegular() && !strings.HasSuffix(walk.Path(), ".receipt.json"):
			listed++
			if !fi.ModTime().Equal(winscpTime) {
				t.Errorf("%s is listed at %v, want the time set on its .filepart, %v", walk.Path(), fi.ModTime(), winscpTime)
			}
		}
	}
	if listed != len(sums) {
		t.Errorf("%d uploads listed, want %d", listed, len(sums))
	}
	assertNoFilepartDelivered(t, g)
	g.auditVerifies(t)
}

// TestWinSCPFilepartGap: half a file uploaded to x.filepart, reopened and
// written past where it stopped, leaving a gap: the rename to x is
// refused, and nothing is delivered. (Writing on from exactly where it
// stopped is resume, tested with resume.)
func TestWinSCPFilepartGap(t *testing.T) {
	t.Parallel()
	python := requireParamiko(t)
	g, key := startAcme(t, gatewayOpts{}, supplierSpec{})
	src, _ := randomFile(t, 4<<20)

	out, err := exec.Command(python, "testdata/winscp_upload.py", "127.0.0.1", g.port(), "acme", key.path,
		"gap", src, "/x.bin").CombinedOutput()
	if err != nil {
		t.Fatalf("winscp gap simulation: %v\n%s\n%s", err, out, g.logTail(20))
	}
	t.Logf("winscp gap simulation: %s", out)
	if strings.Contains(string(out), "already received") {
		t.Error("the client was told that its undelivered file was received")
	}
	// Both opens are rows, neither on its way to delivery: the first
	// one's bytes are dropped when it is reopened, the second is refused
	// for its gap, and neither may be renamed to x.bin.
	trs := g.waitRows(t, 20*time.Second, "both uploads of x.bin.filepart to settle", func(trs []ledger.Transfer) bool {
		return len(trs) >= 2 && !slices.ContainsFunc(trs, isPending)
	})
	for _, tr := range trs {
		t.Logf("transfer %s at %s: %s %q", tr.ID, tr.Path, tr.State, tr.Error)
		if tr.State == ledger.Delivered || tr.Path != "/x.bin.filepart" {
			t.Errorf("transfer %s at %s is %s, want not delivered, at /x.bin.filepart", tr.ID, tr.Path, tr.State)
		}
	}
	assertNoFilepartDelivered(t, g)
	if _, err := os.Stat(g.destFile("acme", "/x.bin")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("x.bin was delivered: %v", err)
	}
	g.auditVerifies(t)
}

// TestWinSCPResume: WinSCP's resume of a .filepart cut off by a dropped
// connection (reopen, seek to its length, write the rest, rename) delivers
// the file once, whole, as the one transfer.
func TestWinSCPResume(t *testing.T) {
	t.Parallel()
	python := requireParamiko(t)
	g, key := startAcme(t, gatewayOpts{}, supplierSpec{})
	src, sha := randomFile(t, 4<<20+12345)

	winscp := func(mode string) string {
		out, err := exec.Command(python, "testdata/winscp_upload.py", "127.0.0.1", g.port(), "acme", key.path,
			mode, src, "/r.bin").CombinedOutput()
		if err != nil {
			t.Fatalf("winscp %s simulation: %v\n%s\n%s", mode, err, out, g.logTail(20))
		}
		return string(out)
	}
	winscp("cut")
	// WinSCP reconnects after its own timeout, by which time the server
	// has seen the connection go; a stat before that finds the upload
	// still being received, and the client starts over.
	g.waitTransfer(t, "acme", "/r.bin.filepart", 10*time.Second, "the cut upload to be interrupted", func(tr ledger.Transfer) bool {
		return tr.State == ledger.Interrupted
	})
	if out := winscp("resume"); !strings.Contains(out, "from 2103324") {
		t.Errorf("the resume did not go on from the half sent:\n%s", out)
	}
	tr := assertArrived(t, g, "acme", "/r.bin", sha, 4<<20+12345)
	if trs := g.transfers(); len(trs) != 1 {
		t.Errorf("%d transfers; want the one upload, resumed and renamed", len(trs))
	}
	if evs := g.eventsOf(tr.ID); !slices.ContainsFunc(evs, func(ev ledger.Event) bool { return ev.Kind == "upload.resume" }) {
		t.Errorf("no upload.resume event for %s", tr.ID)
	}
	assertNoFilepartDelivered(t, g)
	g.auditVerifies(t)
}

// assertNoFilepartDelivered checks that no .filepart name reached acme's
// destination.
func assertNoFilepartDelivered(t *testing.T, g *gateway) {
	t.Helper()
	err := filepath.WalkDir(g.specs["acme"].dest.dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err == nil && strings.HasSuffix(p, ".filepart") {
			t.Errorf("%s delivered", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
