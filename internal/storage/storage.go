// Package storage opens the object stores airlock reads and writes (landing,
// quarantine, destinations, egress) from a plain path or a gocloud URL, and
// provides staged writes: an object is visible under its key only once it is
// complete.
package storage

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/gcerrors"

	// Registered for blob.OpenBucket.
	_ "gocloud.dev/blob/azureblob"
	_ "gocloud.dev/blob/gcsblob"
	_ "gocloud.dev/blob/memblob"
	_ "gocloud.dev/blob/s3blob"
)

// ErrNotFound reports a missing object.
var ErrNotFound = errors.New("object not found")

// Store is an opened object store.
type Store struct {
	bucket   *blob.Bucket
	location string
	local    bool // a directory: writes go straight to a file
}

// Open opens location: a filesystem path (created if missing) or any URL
// gocloud.dev/blob understands (file://, s3://…&endpoint=…, gs://, azblob://,
// mem://).
func Open(ctx context.Context, location string) (*Store, error) {
	var (
		b     *blob.Bucket
		err   error
		local = !IsURL(location)
	)
	if !local {
		b, err = blob.OpenBucket(ctx, location)
	} else {
		b, err = fileblob.OpenBucket(location, &fileblob.Options{
			CreateDir:   true,
			DirFileMode: 0o750,
			// Staged files sit next to their final path so the commit is a
			// same-filesystem rename, never a copy of a multi-GB file.
			NoTempDir: true,
			// The ledger holds everything airlock needs to know about an
			// object; sidecar attribute files would only be clutter.
			Metadata: fileblob.MetadataDontWrite,
		})
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", location, err)
	}
	return &Store{bucket: b, location: location, local: local}, nil
}

// IsURL reports whether location names a URL rather than a filesystem path.
func IsURL(location string) bool {
	scheme, _, ok := strings.Cut(location, "://")
	return ok && scheme != "" && !strings.ContainsAny(scheme, `/\`)
}

// Close releases the store.
func (s *Store) Close() error { return s.bucket.Close() }

// Ping checks that the store answers.
func (s *Store) Ping(ctx context.Context) error {
	ok, err := s.bucket.IsAccessible(ctx)
	if err != nil {
		return fmt.Errorf("ping store %s: %w", s.location, err)
	}
	if !ok {
		return fmt.Errorf("ping store %s: not accessible", s.location)
	}
	return nil
}

// Staged is an object being written. Its bytes are invisible under the key
// until Commit; Abort (or a crash) leaves nothing under the key.
type Staged struct {
	w      io.Writer // w, or a buffer in front of it
	blob   *blob.Writer
	buf    *bufio.Writer
	cancel context.CancelFunc
}

// localWriteBuffer batches the small writes of an SFTP upload into large
// file writes: one system call per MiB instead of one per 32 KiB packet.
// Object stores buffer whole parts themselves.
const localWriteBuffer = 1 << 20

// Stage starts writing key, an object of at most maxSize bytes.
func (s *Store) Stage(ctx context.Context, key string, maxSize int64) (*Staged, error) {
	ctx, cancel := context.WithCancel(ctx)
	w, err := s.bucket.NewWriter(ctx, key, &blob.WriterOptions{
		ContentType:    "application/octet-stream",
		BufferSize:     int(partSize(maxSize)),
		MaxConcurrency: stagePartsInFlight,
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("stage %s: %w", key, err)
	}
	st := &Staged{w: w, blob: w, cancel: cancel}
	if s.local {
		st.buf = bufio.NewWriterSize(w, localWriteBuffer)
		st.w = st.buf
	}
	return st, nil
}

// Multipart uploads to object stores send one part while the next fills:
// that keeps a store busy, and an upload holds two parts of memory (the S3
// SDK's default of five 8 MiB parts in flight alone is 40 MiB).
const stagePartsInFlight = 1

// Parts are 8 MiB, or larger when an object of maxSize would need more
// parts than S3 allows. S3 itself accepts 5 MiB parts, but S3-compatible
// stores keep per-part metadata that can run out (versitygw's posix
// backend failed to complete a 5 GB upload of 954 parts, not one of 597).
const (
	minPartSize = 8 << 20
	maxParts    = 10000
)

func partSize(maxSize int64) int64 {
	const mib = 1 << 20
	need := (maxSize + maxParts - 1) / maxParts
	return max(minPartSize, (need+mib-1)/mib*mib)
}

// WriteBuffer is the memory a staged write of at most maxSize bytes holds
// in buffers: the batching buffer of a local file, or, for object stores,
// the part being filled and the parts being sent.
func (s *Store) WriteBuffer(maxSize int64) int64 {
	if s.local {
		return localWriteBuffer
	}
	return (1 + stagePartsInFlight) * partSize(maxSize)
}

// Write appends p to the staged object.
func (st *Staged) Write(p []byte) (int, error) { return st.w.Write(p) }

// Commit makes the object visible under its key.
func (st *Staged) Commit() error {
	defer st.cancel()
	if st.buf != nil {
		if err := st.buf.Flush(); err != nil {
			st.Abort()
			return fmt.Errorf("commit: %w", err)
		}
	}
	if err := st.blob.Close(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Abort discards the staged bytes.
func (st *Staged) Abort() {
	st.cancel()
	// Closing a writer whose context is cancelled discards its data; the
	// error it returns only says so.
	_ = st.blob.Close()
}

// Attributes describes a stored object.
type Attributes struct {
	Key     string
	Size    int64
	ModTime int64 // Unix seconds
}

// Stat returns the attributes of key.
func (s *Store) Stat(ctx context.Context, key string) (Attributes, error) {
	a, err := s.bucket.Attributes(ctx, key)
	if err != nil {
		return Attributes{}, fmt.Errorf("stat %s: %w", key, wrapNotFound(err))
	}
	return Attributes{Key: key, Size: a.Size, ModTime: a.ModTime.Unix()}, nil
}

// Entry is one item of a directory-style listing.
type Entry struct {
	Attributes
	IsDir bool
}

// List returns the objects and sub-directories directly below prefix, which
// is empty or ends in "/".
func (s *Store) List(ctx context.Context, prefix string) ([]Entry, error) {
	it := s.bucket.List(&blob.ListOptions{Prefix: prefix, Delimiter: "/"})
	var out []Entry
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, err)
		}
		out = append(out, Entry{
			Attributes: Attributes{Key: obj.Key, Size: obj.Size, ModTime: obj.ModTime.Unix()},
			IsDir:      obj.IsDir,
		})
	}
}

// NewRangeReader reads length bytes of key from offset (length < 0: to the end).
func (s *Store) NewRangeReader(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	r, err := s.bucket.NewRangeReader(ctx, key, offset, length, nil)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, wrapNotFound(err))
	}
	return r, nil
}

// Delete removes key; a missing key is not an error, so retries are safe.
func (s *Store) Delete(ctx context.Context, key string) error {
	err := s.bucket.Delete(ctx, key)
	if err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// DeletePrefix removes every object whose key starts with prefix, including
// staged leftovers of an interrupted write, and returns how many it removed.
func (s *Store) DeletePrefix(ctx context.Context, prefix string) (int, error) {
	it := s.bucket.List(&blob.ListOptions{Prefix: prefix})
	n := 0
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("list %s: %w", prefix, err)
		}
		if err := s.Delete(ctx, obj.Key); err != nil {
			return n, err
		}
		n++
	}
}

func wrapNotFound(err error) error {
	if gcerrors.Code(err) == gcerrors.NotFound || errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}
