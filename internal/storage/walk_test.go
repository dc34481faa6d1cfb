package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"gocloud.dev/blob"
	"golang.org/x/sys/unix"
)

// TestWalkLocalOnlyFiles: in a local store only regular files are objects:
// a symbolic link (to a file outside the store, or to a directory) or a
// FIFO is not, so that nothing is read through one.
func TestWalkLocalOnlyFiles(t *testing.T) {
	t.Parallel()
	root, outside := t.TempDir(), t.TempDir()
	secret := filepath.Join(outside, "secret")
	for _, err := range []error{
		os.WriteFile(secret, []byte("not exported"), 0o600),
		os.MkdirAll(filepath.Join(root, "ds/sub"), 0o750),
		os.WriteFile(filepath.Join(root, "ds/sub/real.csv"), []byte("x"), 0o640),
		os.Symlink(secret, filepath.Join(root, "ds/link.csv")),
		os.Symlink(outside, filepath.Join(root, "ds/linkdir")),
		unix.Mkfifo(filepath.Join(root, "ds/fifo"), 0o600),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	st, err := Open(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var keys []string
	if err := st.Walk(t.Context(), "", func(a Attributes) error { keys = append(keys, a.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []string{"ds/sub/real.csv"}; !slices.Equal(keys, want) {
		t.Errorf("Walk = %v, want %v", keys, want)
	}
}

// BenchmarkWalkLocal lists a directory of 20k files in 100 directories
// with Walk, and with fileblob's recursive listing, which Walk replaces
// for local stores.
func BenchmarkWalkLocal(b *testing.B) {
	const n = 20_000
	root := b.TempDir()
	for i := range n {
		p := filepath.Join(root, fmt.Sprintf("ds/%02d/object-%06d.csv", i%100, i))
		if i < 100 {
			if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
				b.Fatal(err)
			}
		}
		if err := os.WriteFile(p, nil, 0o640); err != nil {
			b.Fatal(err)
		}
	}
	st, err := Open(b.Context(), root)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	count := func(b *testing.B, walk func(fn func()) error) {
		b.ReportAllocs()
		for b.Loop() {
			seen := 0
			if err := walk(func() { seen++ }); err != nil || seen != n {
				b.Fatalf("listed %d of %d: %v", seen, n, err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/object")
	}
	b.Run("Walk", func(b *testing.B) {
		count(b, func(fn func()) error {
			return st.Walk(b.Context(), "ds/", func(Attributes) error { fn(); return nil })
		})
	})
	b.Run("fileblob", func(b *testing.B) {
		count(b, func(fn func()) error {
			it := st.bucket.List(&blob.ListOptions{Prefix: "ds/"})
			for {
				_, err := it.Next(b.Context())
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return err
				}
				fn()
			}
		})
	})
}
