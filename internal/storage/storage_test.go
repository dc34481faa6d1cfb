package storage

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestIsURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want bool
	}{
		{"state/landing", false},
		{"/var/lib/airlock/landing", false},
		{"./a://b", false},
		{"file:///var/lib/airlock", true},
		{"s3://bucket/prefix?region=eu-west-2", true},
		{"mem://", true},
		{"", false},
	}
	for _, tt := range tests {
		if got := IsURL(tt.in); got != tt.want {
			t.Errorf("IsURL(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// stores opens the same tests against a local directory and an in-memory
// bucket, the two drivers that need no server.
func stores(t *testing.T) map[string]*Store {
	t.Helper()
	ctx := context.Background()
	out := map[string]*Store{}
	for name, loc := range map[string]string{"dir": filepath.Join(t.TempDir(), "new", "landing"), "mem": "mem://"} {
		st, err := Open(ctx, loc)
		if err != nil {
			t.Fatalf("open %s: %v", loc, err)
		}
		t.Cleanup(func() { st.Close() })
		out[name] = st
	}
	return out
}

// openStore opens location for the test, and closes it when the test ends.
func openStore(t *testing.T, location string) *Store {
	t.Helper()
	st, err := Open(t.Context(), location)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestStagedIsInvisibleUntilCommit(t *testing.T) {
	t.Parallel()
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			staged, err := st.Stage(ctx, "acme/one", 5<<30)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := staged.Write([]byte("hello ")); err != nil {
				t.Fatal(err)
			}
			if _, err := st.Stat(ctx, "acme/one"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("staged object visible before commit: %v", err)
			}
			if _, err := staged.Write([]byte("world")); err != nil {
				t.Fatal(err)
			}
			if err := staged.Commit(); err != nil {
				t.Fatal(err)
			}
			a, err := st.Stat(ctx, "acme/one")
			if err != nil || a.Size != 11 {
				t.Fatalf("after commit: %+v %v", a, err)
			}
		})
	}
}

func TestAbortLeavesNothing(t *testing.T) {
	t.Parallel()
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			staged, err := st.Stage(ctx, "acme/gone", 5<<30)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := staged.Write(bytes.Repeat([]byte("x"), 1<<20)); err != nil {
				t.Fatal(err)
			}
			staged.Abort()
			entries, err := st.List(ctx, "acme/")
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 0 {
				t.Fatalf("abort left %+v", entries)
			}
		})
	}
}

// TestLargeWritesSkipTheBuffer: an upload's largest requests (255 KiB, the
// data the SFTP server's limits allow) and a copy's reads (256 KiB) reach
// the file straight from the caller's buffer; smaller ones are batched.
func TestLargeWritesSkipTheBuffer(t *testing.T) {
	t.Parallel()
	st := openStore(t, t.TempDir())
	w, err := st.Stage(t.Context(), "acme/big", 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	for _, tt := range []struct {
		size, buffered int
	}{{255 << 10, 0}, {256 << 10, 0}, {32 << 10, 32 << 10}, {32 << 10, 64 << 10}} {
		if _, err := w.Write(make([]byte, tt.size)); err != nil {
			t.Fatal(err)
		}
		if got := w.buf.Buffered(); got != tt.buffered {
			t.Errorf("after a write of %d bytes, %d are buffered, want %d", tt.size, got, tt.buffered)
		}
	}
}

// TestStagedWriteEnds: a local write's buffer goes on to the next write
// once the write is committed or aborted; nothing of one write reaches
// another, and a write that has ended takes no more bytes.
func TestStagedWriteEnds(t *testing.T) {
	t.Parallel()
	st, err := Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, end := range []string{"abort", "commit"} {
		t.Run(end, func(t *testing.T) {
			first, err := st.Stage(t.Context(), "acme/"+end, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := first.Write([]byte("unflushed bytes of the first write")); err != nil {
				t.Fatal(err)
			}
			if end == "abort" {
				first.Abort()
			} else if err := first.Commit(); err != nil {
				t.Fatal(err)
			}
			if _, err := first.Write([]byte("late")); !errors.Is(err, errWriteEnded) {
				t.Errorf("write after %s: %v, want errWriteEnded", end, err)
			}

			next, err := st.Stage(t.Context(), "acme/next-"+end, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := next.Write([]byte("next")); err != nil {
				t.Fatal(err)
			}
			if err := next.Commit(); err != nil {
				t.Fatal(err)
			}
			r, err := st.NewRangeReader(t.Context(), "acme/next-"+end, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if b, err := io.ReadAll(r); err != nil || string(b) != "next" {
				t.Errorf("the next write stored %q, %v; want only its own bytes", b, err)
			}
		})
	}
}

func TestDeletePrefix(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st := openStore(t, dir)
	for _, name := range []string{"acme/KEY", "acme/KEY2", "acme/OTHER"} {
		if err := os.MkdirAll(filepath.Join(dir, "acme"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n, err := st.DeletePrefix(t.Context(), "acme/KEY")
	if err != nil || n != 2 {
		t.Fatalf("DeletePrefix = %d, %v; want 2", n, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "acme/OTHER")); err != nil {
		t.Fatalf("an unrelated object went: %v", err)
	}
	if err := st.Delete(t.Context(), "acme/KEY"); err != nil {
		t.Fatalf("deleting a missing key is not an error: %v", err)
	}
}

func TestLocalStaging(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st := openStore(t, dir)

	// The longest name the SFTP name policy allows: a staged file named
	// after it would be longer than the filesystem takes.
	long := "acme/" + strings.Repeat("n", 255)
	staged, err := st.Stage(t.Context(), long, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := staged.Write([]byte("long")); err != nil {
		t.Fatal(err)
	}
	// Nothing shows in the tree while the write runs, not even at the top.
	for _, prefix := range []string{"", "acme/"} {
		if entries, err := st.List(t.Context(), prefix); err != nil || len(entries) != 0 {
			t.Fatalf("List(%q) during the write = %+v, %v", prefix, entries, err)
		}
	}
	if err := staged.Commit(); err != nil {
		t.Fatalf("commit a 255-byte name: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(long))); err != nil || string(b) != "long" {
		t.Fatalf("committed file = %q, %v", b, err)
	}
	if ok, err := st.Verify(t.Context(), long, 4, sha256Hex([]byte("long"))); err != nil || !ok {
		t.Fatalf("Verify of the long name = %v, %v", ok, err)
	}

	// What a killed process leaves behind (its lock gone with it) is
	// cleared at the next start, and never listed or deleted as an object
	// before that; a live writer's file stays.
	for _, durable := range []bool{false, true} {
		l, err := createLocal(dir, "acme/cut-short", durable)
		if err != nil {
			t.Fatal(err)
		}
		l.f.Close()
	}
	live, err := createLocal(dir, "acme/live", false)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := st.DeletePrefix(t.Context(), ""); err != nil || n != 1 {
		t.Errorf("DeletePrefix(\"\") = %d, %v; want only the one object", n, err)
	}
	if n, err := st.ClearStaging(); err != nil || n != 2 {
		t.Errorf("ClearStaging = %d, %v; want 2", n, err)
	}
	if err := live.commit(); err != nil {
		t.Errorf("a live write was cleared under it: %v", err)
	}
	if left, err := os.ReadDir(filepath.Join(dir, StagingDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("staging directory left after clearing, holding %v (%v)", left, err)
	}

	for _, key := range []string{"", "/abs", "../up", "a/../../up", "a//b", StagingDir + "/x", StagingDir} {
		if _, err := st.Stage(t.Context(), key, 1); err == nil {
			t.Errorf("Stage(%q) succeeded", key)
		}
	}
}

func TestReaderAtRandomAccess(t *testing.T) {
	t.Parallel()
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			staged, err := st.Stage(ctx, "egress/file", 5<<30)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := staged.Write(data); err != nil {
				t.Fatal(err)
			}
			if err := staged.Commit(); err != nil {
				t.Fatal(err)
			}
			ra, err := st.OpenReaderAt(ctx, "egress/file")
			if err != nil {
				t.Fatal(err)
			}
			defer ra.Close()
			if ra.Size() != int64(len(data)) {
				t.Fatalf("size %d", ra.Size())
			}
			// Concurrent, out-of-order reads as SFTP workers make them.
			offsets := []int64{0, 65536, 32768, 2 << 20, 98304, 1 << 20, 3<<20 - 1000}
			var wg sync.WaitGroup
			for _, off := range offsets {
				wg.Go(func() {
					buf := make([]byte, 32768)
					n, err := ra.ReadAt(buf, off)
					want := data[off:min(off+32768, int64(len(data)))]
					if err != nil && (!errors.Is(err, io.EOF) || n != len(want)) {
						t.Errorf("ReadAt(%d): %v", off, err)
					}
					if !bytes.Equal(buf[:n], want) {
						t.Errorf("ReadAt(%d) returned the wrong bytes", off)
					}
				})
			}
			wg.Wait()
			if n, err := ra.ReadAt(make([]byte, 10), int64(len(data))); n != 0 || !errors.Is(err, io.EOF) {
				t.Fatalf("read at the end: %d %v", n, err)
			}
			if _, err := st.OpenReaderAt(ctx, "egress/missing"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("missing object: %v", err)
			}
		})
	}
}

func TestPartSize(t *testing.T) {
	t.Parallel()
	tests := []struct{ maxSize, want int64 }{
		{0, 8 << 20},
		{5e9, 8 << 20},       // 5 GB fits in 597 parts of 8 MiB
		{100e9, 10 << 20},    // 100 GB needs 10 MB parts, rounded up to MiB
		{5 << 40, 525 << 20}, // 5 TiB, S3's largest object
	}
	for _, tt := range tests {
		got := partSize(tt.maxSize)
		if got != tt.want {
			t.Errorf("partSize(%d) = %d, want %d", tt.maxSize, got, tt.want)
		}
		if (tt.maxSize+got-1)/got > maxParts {
			t.Errorf("partSize(%d) = %d needs more than %d parts", tt.maxSize, got, maxParts)
		}
	}
}
