package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// testData is larger than a copy buffer, so copies take several reads.
func testData(n int) []byte {
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i * 31)
	}
	return data
}

func put(t *testing.T, st *Store, key string, data []byte) {
	t.Helper()
	if err := putWith(t.Context(), st, key, data, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
}

// putWith writes data to key as one staged object with opts.
func putWith(ctx context.Context, st *Store, key string, data []byte, opts WriteOptions) error {
	w, err := st.stage(ctx, key, int64(len(data)), opts)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return err
	}
	return w.Commit()
}

func readAll(t *testing.T, st *Store, key string) []byte {
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

// assertEmpty fails when anything, a staged leftover included, is below
// prefix.
func assertEmpty(t *testing.T, st *Store, prefix string) {
	t.Helper()
	entries, err := st.List(t.Context(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Fatalf("%s holds %+v", prefix, entries)
	}
}

func TestStreamedCopy(t *testing.T) {
	t.Parallel()
	data := testData(700 << 10)
	opts := CopyOptions{Size: int64(len(data)), SHA256: sha256Hex(data)}
	for srcName, src := range stores(t) {
		put(t, src, "landing/f.csv", data)
		for dstName, dst := range stores(t) {
			t.Run(srcName+"-to-"+dstName, func(t *testing.T) {
				t.Parallel()
				res, err := Copy(t.Context(), dst, "acme/f.csv", src, "landing/f.csv", opts)
				if err != nil || res.ServerSide || res.Linked != (src.local() && dst.local()) {
					t.Fatalf("Copy = %+v, %v", res, err)
				}
				if !bytes.Equal(readAll(t, dst, "acme/f.csv"), data) {
					t.Fatal("delivered bytes differ")
				}
				a, err := dst.Stat(t.Context(), "acme/f.csv")
				if err != nil {
					t.Fatal(err)
				}
				if want := map[bool]string{true: "", false: opts.SHA256}[dst.local()]; a.Metadata[sha256Metadata] != want {
					t.Fatalf("metadata %v, want %s=%q", a.Metadata, sha256Metadata, want)
				}
				if ok, err := dst.Verify(t.Context(), "acme/f.csv", opts.Size, opts.SHA256); !ok || err != nil {
					t.Fatalf("Verify after Copy = %v, %v", ok, err)
				}
			})
		}
	}
}

// localPair is two local stores on one filesystem, with data at
// landing/f.csv of the first.
func localPair(t *testing.T, data []byte) (src, dst *Store) {
	t.Helper()
	root := t.TempDir()
	src, dst = openStore(t, filepath.Join(root, "landing")), openStore(t, filepath.Join(root, "dest"))
	put(t, src, "landing/f.csv", data)
	return src, dst
}

func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	ai, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	bi, err := os.Stat(b)
	if err != nil {
		t.Fatal(err)
	}
	return os.SameFile(ai, bi)
}

// assertNoneStaged fails when st has a staging directory: a write that
// ends leaves none behind in a delivered-to directory.
func assertNoneStaged(t *testing.T, st *Store) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(st.open, StagingDir))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("staging directory left behind, holding %d entries (%v)", len(entries), err)
	}
}

func TestLocalCopyLinks(t *testing.T) {
	t.Parallel()
	data := testData(300 << 10)
	src, dst := localPair(t, data)
	res, err := Copy(t.Context(), dst, "acme/f.csv", src, "landing/f.csv", CopyOptions{Size: int64(len(data)), SHA256: sha256Hex(data)})
	if err != nil || !res.Linked {
		t.Fatalf("Copy = %+v, %v; want it linked", res, err)
	}
	if !sameFile(t, filepath.Join(src.open, "landing", "f.csv"), filepath.Join(dst.open, "acme", "f.csv")) {
		t.Error("the delivered file is not the source's")
	}
	assertNoneStaged(t, dst)

	// A link is checked like a copy: other bytes than expected leave
	// nothing behind.
	_, err = Copy(t.Context(), dst, "acme/g.csv", src, "landing/f.csv", CopyOptions{Size: int64(len(data)), SHA256: sha256Hex([]byte("other"))})
	if !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("Copy with another sha256: %v, want ErrChecksumMismatch", err)
	}
	assertEmpty(t, dst, "acme/g.csv")
	assertNoneStaged(t, dst)
}

// TestLocalStagingConcurrent: deliveries into one store at once, linked
// and copied, while each removes the staging directory it leaves empty,
// all land, and leave no staging directory behind.
func TestLocalStagingConcurrent(t *testing.T) {
	t.Parallel()
	const writers, each = 8, 25
	data := testData(4 << 10)
	src, dst := localPair(t, data)
	opts := CopyOptions{Size: int64(len(data)), SHA256: sha256Hex(data)}
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				key := fmt.Sprintf("acme/%d/%d.csv", w, i)
				if w%2 == 0 { // linked
					_, err := Copy(t.Context(), dst, key, src, "landing/f.csv", opts)
					errs <- err
					continue
				}
				errs <- putWith(t.Context(), dst, key, data, WriteOptions{})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for w := range writers {
		for i := range each {
			if got := readAll(t, dst, fmt.Sprintf("acme/%d/%d.csv", w, i)); !bytes.Equal(got, data) {
				t.Fatalf("acme/%d/%d.csv: %d bytes, want %d", w, i, len(got), len(data))
			}
		}
	}
	assertNoneStaged(t, dst)
}

// TestLocalCopyKeepsWhatDirectoriesGive: a staging directory that gives
// new files its group or a default ACL gets copies, which take them, not
// links, which would not.
func TestLocalCopyKeepsWhatDirectoriesGive(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string, fileGid uint32)
	}{
		{"set-group-ID with another group", func(t *testing.T, dir string, fileGid uint32) {
			if err := os.Chown(dir, -1, int(otherGroup(t, fileGid))); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, 0o750|os.ModeSetgid); err != nil {
				t.Fatal(err)
			}
		}},
		{"default ACL", func(t *testing.T, dir string, _ uint32) {
			// user::rwx, group::r-x, other::--- in the kernel's encoding:
			// a version, then (tag, permissions, id) entries.
			acl := []byte{2, 0, 0, 0,
				0x01, 0, 7, 0, 0xff, 0xff, 0xff, 0xff,
				0x04, 0, 5, 0, 0xff, 0xff, 0xff, 0xff,
				0x20, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}
			err := unix.Setxattr(dir, "system.posix_acl_default", acl, 0)
			if errors.Is(err, unix.ENOTSUP) {
				t.Skip("the filesystem has no ACLs")
			}
			if err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			data := testData(100 << 10)
			src, dst := localPair(t, data)
			staging := filepath.Join(dst.open, StagingDir)
			if err := os.MkdirAll(staging, 0o750); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(filepath.Join(src.open, "landing", "f.csv"))
			if err != nil {
				t.Fatal(err)
			}
			tt.setup(t, staging, fi.Sys().(*syscall.Stat_t).Gid)
			res, err := Copy(t.Context(), dst, "acme/f.csv", src, "landing/f.csv", CopyOptions{Size: int64(len(data)), SHA256: sha256Hex(data)})
			if err != nil || res.Linked {
				t.Fatalf("Copy = %+v, %v; want it copied", res, err)
			}
			if !bytes.Equal(readAll(t, dst, "acme/f.csv"), data) {
				t.Fatal("delivered bytes differ")
			}
			assertNoneStaged(t, dst)
		})
	}
}

// otherGroup returns a group other than gid that this process may give a
// directory it owns: any group for root, else one of its own.
func otherGroup(t *testing.T, gid uint32) uint32 {
	t.Helper()
	if os.Getuid() == 0 {
		return gid + 1
	}
	groups, err := os.Getgroups()
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		if uint32(g) != gid {
			return uint32(g)
		}
	}
	t.Skip("this user belongs to no second group")
	return 0
}

// TestLocalCopyWithoutLinks replaces link, so it does not run in parallel
// with the tests that copy.
func TestLocalCopyWithoutLinks(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EXDEV, syscall.EPERM, syscall.EMLINK, syscall.EOPNOTSUPP} {
		t.Run(errno.Error(), func(t *testing.T) {
			link = func(from, to string) error { return &os.LinkError{Op: "link", Old: from, New: to, Err: errno} }
			t.Cleanup(func() { link = os.Link })
			data := testData(300 << 10)
			src, dst := localPair(t, data)
			res, err := Copy(t.Context(), dst, "acme/f.csv", src, "landing/f.csv", CopyOptions{Size: int64(len(data)), SHA256: sha256Hex(data)})
			if err != nil || res.Linked {
				t.Fatalf("Copy = %+v, %v; want it copied", res, err)
			}
			if !bytes.Equal(readAll(t, dst, "acme/f.csv"), data) {
				t.Fatal("delivered bytes differ")
			}
			if sameFile(t, filepath.Join(src.open, "landing", "f.csv"), filepath.Join(dst.open, "acme", "f.csv")) {
				t.Error("the delivered file is the source's")
			}
			assertNoneStaged(t, dst)
		})
	}
}

func TestCopyMismatchLeavesNothing(t *testing.T) {
	t.Parallel()
	data := testData(300 << 10)
	sum := sha256Hex(data)
	tests := []struct {
		name string
		opts CopyOptions
	}{
		{"sha256", CopyOptions{Size: int64(len(data)), SHA256: sha256Hex([]byte("other"))}},
		{"shorter", CopyOptions{Size: int64(len(data)) - 1, SHA256: sum}},
		{"longer", CopyOptions{Size: int64(len(data)) + 1, SHA256: sum}},
	}
	for name, st := range stores(t) {
		put(t, st, "landing/f", data)
		for _, tt := range tests {
			t.Run(name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				dstKey := "acme/" + tt.name
				_, err := Copy(t.Context(), st, dstKey, st, "landing/f", tt.opts)
				if !errors.Is(err, ErrChecksumMismatch) {
					t.Fatalf("Copy: %v, want ErrChecksumMismatch", err)
				}
				assertEmpty(t, st, dstKey)
			})
		}
	}
}

func TestCopyRefuses(t *testing.T) {
	t.Parallel()
	for name, st := range stores(t) {
		put(t, st, "landing/f", []byte("x"))
		tests := []struct {
			name string
			opts CopyOptions
			want string
		}{
			{"uppercase sha256", CopyOptions{Size: 1, SHA256: strings.ToUpper(sha256Hex([]byte("x")))}, "lowercase hex"},
			{"short sha256", CopyOptions{Size: 1, SHA256: "abcd"}, "lowercase hex"},
			{"negative size", CopyOptions{Size: -1, SHA256: sha256Hex([]byte("x"))}, "negative size"},
			{"kms outside s3", CopyOptions{Size: 1, SHA256: sha256Hex([]byte("x")), KMSKey: "k"}, "SSE-KMS needs an S3 store"},
		}
		for _, tt := range tests {
			t.Run(name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				_, err := Copy(t.Context(), st, "out/"+tt.name, st, "landing/f", tt.opts)
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("Copy: %v, want an error saying %q", err, tt.want)
				}
				assertEmpty(t, st, "out/")
			})
		}
	}
}

func TestCopyMissingSource(t *testing.T) {
	t.Parallel()
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := Copy(t.Context(), st, "acme/f", st, "landing/none", CopyOptions{SHA256: sha256Hex(nil)})
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("Copy: %v, want ErrNotFound", err)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	data := []byte("delivered bytes")
	sum := sha256Hex(data)
	for name, st := range stores(t) {
		put(t, st, "landing/f", data)
		if _, err := Copy(t.Context(), st, "acme/f", st, "landing/f", CopyOptions{Size: int64(len(data)), SHA256: sum}); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name, key string
			size      int64
			sha256    string
			want      bool
		}{
			{"match", "acme/f", int64(len(data)), sum, true},
			{"other size", "acme/f", int64(len(data)) + 1, sum, false},
			{"other sha256", "acme/f", int64(len(data)), sha256Hex([]byte("x")), false},
			{"missing", "acme/none", int64(len(data)), sum, false},
			// Object stores check the metadata a delivery writes, so an
			// object put there otherwise never verifies; a directory has
			// only its bytes to go by.
			{"not delivered", "landing/f", int64(len(data)), sum, st.local()},
		}
		for _, tt := range tests {
			t.Run(name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				ok, err := st.Verify(t.Context(), tt.key, tt.size, tt.sha256)
				if ok != tt.want || err != nil {
					t.Fatalf("Verify = %v, %v; want %v, nil", ok, err, tt.want)
				}
			})
		}
	}
}

// A directory keeps no metadata, so Verify must read the bytes: a file
// changed in place at the same size does not verify.
func TestVerifyRereadsLocalFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st := openStore(t, dir)
	data := []byte("delivered bytes")
	put(t, st, "acme/f", data)
	if ok, err := st.Verify(t.Context(), "acme/f", int64(len(data)), sha256Hex(data)); !ok || err != nil {
		t.Fatalf("Verify = %v, %v", ok, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "acme", "f"), bytes.ToUpper(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if ok, err := st.Verify(t.Context(), "acme/f", int64(len(data)), sha256Hex(data)); ok || err != nil {
		t.Fatalf("Verify of changed bytes = %v, %v", ok, err)
	}
}

func TestWriteOptions(t *testing.T) {
	t.Parallel()
	st := openStore(t, "mem://")
	md := map[string]string{"source": "acme"}
	if err := putWith(t.Context(), st, "r.json", []byte("{}"), WriteOptions{Metadata: md}); err != nil {
		t.Fatal(err)
	}
	a, err := st.Stat(t.Context(), "r.json")
	if err != nil || a.Metadata["source"] != "acme" {
		t.Fatalf("Stat = %+v, %v", a, err)
	}
	for _, opts := range []WriteOptions{{KMSKey: "k"}, {Metadata: map[string]string{"Source": "acme"}}} {
		if err := putWith(t.Context(), st, "bad", []byte("{}"), opts); err == nil {
			t.Errorf("write with %+v succeeded", opts)
		}
	}
	assertEmpty(t, st, "bad")
}

func TestCopiesServerSide(t *testing.T) {
	t.Parallel()
	store := func(location string) *Store {
		tg, err := parseLocation(location)
		if err != nil {
			t.Fatal(err)
		}
		return &Store{target: tg}
	}
	landing := store("s3://landing/in?region=eu-west-2&endpoint=http://s3")
	tests := []struct {
		name     string
		dst      string
		dstKey   string
		size     int64
		expected bool
	}{
		{"same connection", "s3://dest/acme?endpoint=http://s3&region=eu-west-2", "f", 5 << 30, true},
		{"same connection, prefix= param", "s3://dest?region=eu-west-2&prefix=x/&endpoint=http://s3", "f", 1, true},
		{"over 5 GiB", "s3://dest/acme?region=eu-west-2&endpoint=http://s3", "f", 5<<30 + 1, false},
		{"other endpoint", "s3://dest/acme?region=eu-west-2&endpoint=http://s4", "f", 1, false},
		{"other region", "s3://dest/acme?region=eu-west-1&endpoint=http://s3", "f", 1, false},
		{"other profile", "s3://dest/acme?region=eu-west-2&endpoint=http://s3&profile=p", "f", 1, false},
		{"URL encryption", "s3://dest/acme?region=eu-west-2&endpoint=http://s3&ssetype=aws:kms", "f", 1, false},
		{"escaped key", "s3://dest/acme?region=eu-west-2&endpoint=http://s3", "a/../b", 1, false},
		{"control character", "s3://dest/acme?region=eu-west-2&endpoint=http://s3", "a\tb", 1, false},
		{"not s3", "gs://dest/acme?region=eu-west-2&endpoint=http://s3", "f", 1, false},
		{"memory", "mem://", "f", 1, false},
	}
	for _, tt := range tests {
		if got := copiesServerSide(store(tt.dst), tt.dstKey, landing, "f", tt.size); got != tt.expected {
			t.Errorf("%s: copiesServerSide = %v", tt.name, got)
		}
	}
}

func TestCopySource(t *testing.T) {
	t.Parallel()
	if got, want := copySource("land", "in/a+b c/ü.csv"), "land%2Fin%2Fa%2Bb%20c%2F%C3%BC.csv"; got != want {
		t.Fatalf("copySource = %q, want %q", got, want)
	}
}

// FuzzCopySource checks that S3 (percent-decoding) and versitygw
// (query-decoding) both read back the bucket and key a copy names.
func FuzzCopySource(f *testing.F) {
	f.Add("land", "in/a+b c/ü.csv")
	f.Fuzz(func(t *testing.T, bucket, key string) {
		src := copySource(bucket, key)
		for name, unescape := range map[string]func(string) (string, error){"path": url.PathUnescape, "query": url.QueryUnescape} {
			if got, err := unescape(src); err != nil || got != bucket+"/"+key {
				t.Fatalf("%s-unescaping %q = %q, %v; want %q", name, src, got, err, bucket+"/"+key)
			}
		}
	})
}
