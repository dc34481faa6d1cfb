// Package storagetest is the conformance suite of airlock's stores, as
// gocloud's drivertest is of its drivers: every kind of store airlock
// writes to (a local directory, mem://, S3) runs the same tests of the
// guarantees the pipeline and the SFTP server build on. A store that
// passes here may stand behind any of them.
package storagetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/airlock-gw/airlock/internal/storage"
)

// Harness says how to get stores of the kind under test.
type Harness struct {
	// Open returns a fresh, empty store; the test closes it.
	Open func(t *testing.T) *storage.Store
	// Resumable: a staged write may be suspended and resumed (see
	// storage.Staged.Suspend); otherwise Suspend must refuse and keep
	// nothing.
	Resumable bool
}

// Large is the size of the suite's larger objects: more than two of the
// parts object stores are written in, so that a multipart upload is
// staged, suspended and copied.
const Large = 17 << 20

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	t.Run("StagedIsInvisibleUntilCommit", func(t *testing.T) { stagedInvisible(t, h) })
	t.Run("AbortLeavesNothing", func(t *testing.T) { abortLeavesNothing(t, h) })
	t.Run("ReadsAndMissing", func(t *testing.T) { readsAndMissing(t, h) })
	t.Run("ListAndDelete", func(t *testing.T) { listAndDelete(t, h) })
	t.Run("CopyVerifies", func(t *testing.T) { copyVerifies(t, h) })
	t.Run("SuspendResume", func(t *testing.T) { suspendResume(t, h) })
	t.Run("Walk", func(t *testing.T) { walk(t, h) })
}

func open(t *testing.T, h Harness) *storage.Store {
	t.Helper()
	st := h.Open(t)
	t.Cleanup(func() { st.Close() })
	return st
}

// Data returns n bytes that differ from offset to offset.
func Data(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i>>10)
	}
	return b
}

// SHA256 is the lowercase hex sha256 of b.
func SHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Put stages data under key and commits it.
func Put(t *testing.T, st *storage.Store, key string, data []byte) {
	t.Helper()
	w, err := st.Stage(t.Context(), key, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, w *storage.Staged, p []byte) {
	t.Helper()
	if _, err := w.Write(p); err != nil {
		t.Fatal(err)
	}
}

// Read returns what key holds.
func Read(t *testing.T, st *storage.Store, key string) []byte {
	t.Helper()
	r, err := st.NewRangeReader(t.Context(), key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// keys lists every object below prefix, recursively.
func keys(t *testing.T, st *storage.Store, prefix string) []string {
	t.Helper()
	entries, err := st.List(t.Context(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir {
			out = append(out, keys(t, st, e.Key)...)
			continue
		}
		out = append(out, e.Key)
	}
	slices.Sort(out)
	return out
}

func assertEmpty(t *testing.T, st *storage.Store) {
	t.Helper()
	if ks := keys(t, st, ""); len(ks) > 0 {
		t.Errorf("the store holds %v, want nothing", ks)
	}
}

func stagedInvisible(t *testing.T, h Harness) {
	st := open(t, h)
	var written []string
	for _, size := range []int{0, 100, Large} {
		data := Data(size)
		key := fmt.Sprintf("a/%d.bin", size)
		w, err := st.Stage(t.Context(), key, int64(size))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Stat(t.Context(), key); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("%d bytes staged are visible before the commit: %v", size, err)
		}
		if got := keys(t, st, ""); !slices.Equal(got, written) {
			t.Fatalf("listing while %d bytes are staged = %v, want %v", size, got, written)
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		if a, err := st.Stat(t.Context(), key); err != nil || a.Size != int64(size) {
			t.Fatalf("Stat after commit = %+v, %v; want %d bytes", a, err, size)
		}
		if !bytes.Equal(Read(t, st, key), data) {
			t.Fatalf("the %d-byte object holds other bytes than were written", size)
		}
		written = append(written, key)
		slices.Sort(written)
	}
}

func abortLeavesNothing(t *testing.T, h Harness) {
	st := open(t, h)
	for _, size := range []int{100, Large} {
		w, err := st.Stage(t.Context(), "x.bin", int64(size))
		if err != nil {
			t.Fatal(err)
		}
		write(t, w, Data(size))
		w.Abort()
		if err := w.Commit(); err == nil {
			t.Errorf("an aborted write of %d bytes committed", size)
		}
		assertEmpty(t, st)
	}
}

func readsAndMissing(t *testing.T, h Harness) {
	st := open(t, h)
	data := Data(1000)
	Put(t, st, "r.bin", data)
	r, err := st.NewRangeReader(t.Context(), "r.bin", 100, 50)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, data[100:150]) {
		t.Errorf("range 100+50 = %d bytes, %v; want bytes 100 to 150", len(got), err)
	}
	if _, err := st.Stat(t.Context(), "missing"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat of a missing key = %v, want ErrNotFound", err)
	}
	if _, err := st.NewRangeReader(t.Context(), "missing", 0, -1); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("reading a missing key = %v, want ErrNotFound", err)
	}
}

func listAndDelete(t *testing.T, h Harness) {
	st := open(t, h)
	for _, k := range []string{"p/1", "p/2", "p/q/3", "pq/4", "z"} {
		Put(t, st, k, Data(10))
	}
	entries, err := st.List(t.Context(), "p/")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Key)
	}
	if want := []string{"p/1", "p/2", "p/q/"}; !slices.Equal(names, want) {
		t.Errorf("List(p/) = %v, want %v", names, want)
	}
	for range 2 { // deleting what is gone is no error, so retries are safe
		if err := st.Delete(t.Context(), "z"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
	if n, err := st.DeletePrefix(t.Context(), "p/"); err != nil || n != 3 {
		t.Errorf("DeletePrefix(p/) = %d, %v; want 3", n, err)
	}
	if got := keys(t, st, ""); !slices.Equal(got, []string{"pq/4"}) {
		t.Errorf("left after the deletes: %v, want [pq/4]", got)
	}
}

func copyVerifies(t *testing.T, h Harness) {
	src, dst := open(t, h), open(t, h)
	data := Data(Large)
	Put(t, src, "in.bin", data)
	opts := storage.CopyOptions{Size: int64(len(data)), SHA256: SHA256(data)}
	if _, err := storage.Copy(t.Context(), dst, "out/in.bin", src, "in.bin", opts); err != nil {
		t.Fatal(err)
	}
	if ok, err := dst.Verify(t.Context(), "out/in.bin", opts.Size, opts.SHA256); !ok || err != nil {
		t.Errorf("Verify of the copy = %v, %v", ok, err)
	}
	if !bytes.Equal(Read(t, dst, "out/in.bin"), data) {
		t.Error("the copy holds other bytes")
	}
	bad := opts
	bad.SHA256 = SHA256(nil)
	if _, err := storage.Copy(t.Context(), dst, "out/bad.bin", src, "in.bin", bad); !errors.Is(err, storage.ErrChecksumMismatch) {
		t.Errorf("Copy with the wrong sha256 = %v, want ErrChecksumMismatch", err)
	}
	if got := keys(t, dst, ""); !slices.Equal(got, []string{"out/in.bin"}) {
		t.Errorf("after a refused copy the store holds %v, want the good copy alone", got)
	}
	if ok, err := dst.Verify(t.Context(), "out/in.bin", opts.Size, SHA256(data[1:])); ok && err == nil {
		t.Error("Verify accepted the wrong sha256")
	}
}

func suspendResume(t *testing.T, h Harness) {
	st := open(t, h)
	data := Data(Large + 12345)
	w, err := st.StageResumable(t.Context(), "s.bin", int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	cut := Large/2 + 777 // a part, and a tail that fills none
	write(t, w, data[:cut])
	cp, err := w.Suspend(t.Context())
	if !h.Resumable {
		if !errors.Is(err, storage.ErrCannotSuspend) {
			t.Errorf("Suspend on a store that keeps nothing = %v, want ErrCannotSuspend", err)
		}
		assertEmpty(t, st)
		return
	}
	if err != nil || cp.Size != int64(cut) {
		t.Fatalf("Suspend = %+v, %v; want %d bytes kept", cp, err, cut)
	}
	assertEmpty(t, st)
	if w, err = st.Resume(t.Context(), "s.bin", int64(len(data)), cp); err != nil {
		t.Fatal(err)
	}
	write(t, w, data[cut:])
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(Read(t, st, "s.bin"), data) {
		t.Error("the resumed object holds other bytes")
	}
	if _, err := st.Resume(t.Context(), "s.bin", int64(len(data)), cp); err == nil {
		t.Error("a checkpoint resumed twice")
	}

	// Discarded: nothing stays, and a retry is content.
	if w, err = st.StageResumable(t.Context(), "d.bin", int64(len(data))); err != nil {
		t.Fatal(err)
	}
	write(t, w, data[:cut])
	if cp, err = w.Suspend(t.Context()); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := st.DiscardSuspended(t.Context(), "d.bin", cp); err != nil {
			t.Fatalf("DiscardSuspended: %v", err)
		}
	}
	if got := keys(t, st, ""); !slices.Equal(got, []string{"s.bin"}) {
		t.Errorf("after a discard the store holds %v, want the resumed object alone", got)
	}
}
