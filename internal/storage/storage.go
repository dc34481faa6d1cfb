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
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	tmtypes "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/s3blob"
	"gocloud.dev/gcerrors"

	// Registered for blob.OpenBucket.
	_ "gocloud.dev/blob/azureblob"
	_ "gocloud.dev/blob/gcsblob"
	_ "gocloud.dev/blob/memblob"
)

// ErrNotFound reports a missing object.
var ErrNotFound = errors.New("object not found")

// Store is an opened object store.
type Store struct {
	bucket *blob.Bucket
	target
}

// Open opens location: a filesystem path (created if missing) or any URL
// gocloud.dev/blob understands (file://, s3://…&endpoint=…, gs://, azblob://,
// mem://). The path of an s3://, gs:// or azblob:// URL is a key prefix
// inside the bucket: s3://mojap-land/acme holds its objects under "acme/".
func Open(ctx context.Context, location string) (*Store, error) {
	t, err := parseLocation(location)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	b, err := openBucket(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", t.shown, err)
	}
	return &Store{bucket: b, target: t}, nil
}

// local reports a directory: writes go straight to a file.
func (s *Store) local() bool { return s.scheme == "" }

func openBucket(ctx context.Context, t target) (*blob.Bucket, error) {
	if t.scheme == "" {
		// Writes bypass fileblob (see localStaged); it reads, lists and
		// deletes.
		return fileblob.OpenBucket(t.open, &fileblob.Options{
			CreateDir:   true,
			DirFileMode: 0o750,
			// The ledger holds everything airlock needs to know about an
			// object; sidecar attribute files would only be clutter.
			Metadata: fileblob.MetadataDontWrite,
		})
	}
	b, err := blob.OpenBucket(ctx, t.open)
	if err != nil || t.prefix == "" {
		return b, err
	}
	return blob.PrefixedBucket(b, t.prefix), nil
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
		return fmt.Errorf("ping store %s: %w", s, err)
	}
	if !ok {
		return fmt.Errorf("ping store %s: not accessible", s)
	}
	return nil
}

// Staged is an object being written. Its bytes are invisible under the key
// until Commit; Abort (or a crash) leaves nothing under the key.
type Staged struct {
	w      io.Writer     // the writer, or buf in front of it
	buf    *bufio.Writer // local directories
	close  func() error  // completes the write, or discards it after abort
	abort  func()
	cancel context.CancelFunc
	// suspend keeps what was staged, once the buffer is flushed (see
	// Suspend); nil where the store cannot.
	suspend func(context.Context) (Checkpoint, error)
}

// localWriteBuffer batches the small writes of an SFTP upload (32 KiB
// packets) into file writes of this size. A write at least as large, such as
// an upload's 255 KiB requests or a copy's 256 KiB reads, goes straight to
// the file from the caller's buffer instead (bufio.Writer does so when its
// buffer is empty): copying each through a MiB buffer cost a 1 GiB upload a
// fifth more CPU and wall time. Object stores buffer whole parts themselves.
const localWriteBuffer = 128 << 10

// writeBuffers hold the buffers of local staged writes between writes: a
// buffer allocated for each file made a MiB of garbage per upload, most of
// the garbage collector's work with many small files.
var writeBuffers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, localWriteBuffer) }}

// errWriteEnded is what a staged write returns once committed or aborted.
var errWriteEnded = errors.New("the staged write has ended")

// Stage starts writing key, an object of at most maxSize bytes.
func (s *Store) Stage(ctx context.Context, key string, maxSize int64) (*Staged, error) {
	return s.stage(ctx, key, maxSize, WriteOptions{})
}

// StageWith is Stage for an object with the properties opts gives it.
func (s *Store) StageWith(ctx context.Context, key string, maxSize int64, opts WriteOptions) (*Staged, error) {
	return s.stage(ctx, key, maxSize, opts)
}

// WriteOptions are properties of an object a staged write makes.
type WriteOptions struct {
	KMSKey   string            // SSE-KMS key id/ARN: x-amz-server-side-encryption: aws:kms and x-amz-server-side-encryption-aws-kms-key-id; S3 only (error for other stores when set)
	Metadata map[string]string // user metadata; keys lowercase
	// Durable: in a local directory, the file and its directory are
	// synced to disk before Commit returns. Object stores are durable once
	// they acknowledge a write.
	Durable bool
}

// contentType is what airlock writes: it never interprets the bytes.
const contentType = "application/octet-stream"

func (s *Store) stage(ctx context.Context, key string, maxSize int64, opts WriteOptions) (*Staged, error) {
	if err := opts.check(s); err != nil {
		return nil, fmt.Errorf("stage %s: %w", key, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	wopts := &blob.WriterOptions{
		ContentType:    contentType,
		BufferSize:     int(partSize(maxSize)),
		MaxConcurrency: stagePartsInFlight,
		Metadata:       opts.Metadata,
		BeforeWrite:    opts.beforeWrite(),
	}
	if s.local() {
		l, err := createLocal(s.open, key, opts.Durable)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("stage %s: %w", key, err)
		}
		return newLocalStaged(l, s.open, cancel), nil
	}
	st := &Staged{cancel: cancel}
	if s.scheme == s3blob.Scheme {
		wopts.BeforeWrite = s.tuneS3Upload(wopts.BufferSize, wopts.BeforeWrite)
		st.w, st.close, st.abort = s3Upload(ctx, s.bucket, key, wopts)
		return st, nil
	}
	w, err := s.bucket.NewWriter(ctx, key, wopts)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("stage %s: %w", key, err)
	}
	// Closing a writer whose context is cancelled discards its data.
	st.w, st.close, st.abort = w, w.Close, cancel
	return st, nil
}

// newLocalStaged writes l, a file staged in the store at root, through a
// pooled buffer.
func newLocalStaged(l *localStaged, root string, cancel context.CancelFunc) *Staged {
	buf := writeBuffers.Get().(*bufio.Writer)
	buf.Reset(l.f)
	return &Staged{
		w: buf, buf: buf, close: l.commit, abort: l.abort, cancel: cancel,
		suspend: func(context.Context) (Checkpoint, error) { return l.keep(root) },
	}
}

// errAborted fails an S3 upload on purpose.
var errAborted = errors.New("staged write aborted")

// s3Upload streams to key through a pipe that abort fails. The S3 transfer
// manager aborts a multipart upload whose reader fails, but not one whose
// context is cancelled (it sends the abort with that context), which would
// leave the uploaded parts stored, and billed, in the bucket.
func s3Upload(ctx context.Context, b *blob.Bucket, key string, opts *blob.WriterOptions) (w io.Writer, closeFn func() error, abort func()) {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	var err error
	go func() {
		defer close(done)
		err = b.Upload(ctx, key, pr, opts)
		// A failed upload reads no more: fail the writes waiting for it.
		pr.CloseWithError(err)
	}()
	closeFn = func() error {
		_ = pw.Close() // never fails
		<-done
		return err
	}
	return pw, closeFn, func() { pw.CloseWithError(errAborted) }
}

func (o WriteOptions) check(s *Store) error {
	if o.KMSKey != "" && s.scheme != s3blob.Scheme {
		return fmt.Errorf("SSE-KMS needs an S3 store, not %s", s)
	}
	for k := range o.Metadata {
		// S3 returns metadata keys lowercased: any other key would not
		// read back as written.
		if k != strings.ToLower(k) {
			return fmt.Errorf("metadata key %q is not lowercase", k)
		}
	}
	return nil
}

// tuneS3Upload returns a BeforeWrite that sets up the S3 transfer manager
// of an upload in parts of partSize, then runs next, if any.
//
// gocloud leaves the manager's threshold for a multipart upload at the SDK's
// 16 MiB, and the manager reads that much of the stream with io.ReadAll
// before it sends anything: 16 MiB held, and as much again while it is read,
// beside the parts WriteBuffer counts. With the threshold at one part, the
// first read is one part, and an upload's peak RSS fell by about 20 MiB.
// gocloud gives BeforeWrite its manager to change; the manager's options
// are set only by New, so a new one replaces it, with the checksum setting
// gocloud gave it, which comes from the bucket's client.
func (s *Store) tuneS3Upload(partSize int, next func(as func(any) bool) error) func(as func(any) bool) error {
	return func(as func(any) bool) error {
		var tm *transfermanager.Client
		var client *s3.Client
		if !as(&tm) || !s.bucket.As(&client) {
			return fmt.Errorf("%s: not an S3 bucket", s)
		}
		*tm = *transfermanager.New(client, func(o *transfermanager.Options) {
			o.RequestChecksumCalculation = client.Options().RequestChecksumCalculation
			o.PartSizeBytes = int64(partSize)
			o.MultipartUploadThreshold = int64(partSize)
			o.Concurrency = stagePartsInFlight
		})
		if next == nil {
			return nil
		}
		return next(as)
	}
}

// beforeWrite sets SSE-KMS on the upload: on its PutObject, or on the
// CreateMultipartUpload of a larger object.
func (o WriteOptions) beforeWrite() func(as func(any) bool) error {
	if o.KMSKey == "" {
		return nil
	}
	return func(as func(any) bool) error {
		var in *transfermanager.UploadObjectInput
		if !as(&in) {
			return errors.New("SSE-KMS: the store is not S3")
		}
		in.ServerSideEncryption = tmtypes.ServerSideEncryptionAwsKms
		in.SSEKMSKeyID = aws.String(o.KMSKey)
		return nil
	}
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
	if s.local() {
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
		st.release()
	}
	if err := st.close(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Abort discards the staged bytes.
func (st *Staged) Abort() {
	st.abort()
	st.release()
	// After abort, close only waits for the discard; its error says so.
	_ = st.close()
	st.cancel()
}

// release gives a local write's buffer back for another; the write takes
// no more bytes.
func (st *Staged) release() {
	if st.buf == nil {
		return
	}
	st.buf.Reset(nil)
	writeBuffers.Put(st.buf)
	st.buf = nil
	st.w = endedWriter{}
}

type endedWriter struct{}

func (endedWriter) Write([]byte) (int, error) { return 0, errWriteEnded }

// Attributes describes a stored object.
type Attributes struct {
	Key      string
	Size     int64
	ModTime  int64             // Unix seconds
	Metadata map[string]string // user metadata; none in local directories
	ETag     string            // set by Walk: S3's entity tag, another store's hex MD5, or "" (local directories)
}

// Stat returns the attributes of key.
func (s *Store) Stat(ctx context.Context, key string) (Attributes, error) {
	if s.local() {
		return s.statLocal(key)
	}
	a, err := s.bucket.Attributes(ctx, key)
	if err != nil {
		return Attributes{}, fmt.Errorf("stat %s: %w", key, wrapNotFound(err))
	}
	return Attributes{Key: key, Size: a.Size, ModTime: a.ModTime.Unix(), Metadata: a.Metadata}, nil
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
		if s.staging(obj.Key) {
			continue
		}
		out = append(out, Entry{
			Attributes: Attributes{Key: obj.Key, Size: obj.Size, ModTime: obj.ModTime.Unix()},
			IsDir:      obj.IsDir,
		})
	}
}

// NewRangeReader reads length bytes of key from offset (length < 0: to the end).
func (s *Store) NewRangeReader(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if s.local() {
		return s.readLocal(key, offset, length)
	}
	r, err := s.bucket.NewRangeReader(ctx, key, offset, length, nil)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, wrapNotFound(err))
	}
	return r, nil
}

// Delete removes key; a missing key is not an error, so retries are safe.
func (s *Store) Delete(ctx context.Context, key string) error {
	if s.local() {
		// fileblob also removes a sidecar "<name>.attrs", which fails
		// for the longest legal names; local stores keep no sidecars.
		return s.deleteLocal(key)
	}
	err := s.bucket.Delete(ctx, key)
	if err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// DeletePrefix removes every object whose key starts with prefix and
// returns how many it removed.
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
		if s.staging(obj.Key) {
			continue
		}
		if err := s.Delete(ctx, obj.Key); err != nil {
			return n, err
		}
		n++
	}
}

// httpStatus is the status of a failed HTTP request in an SDK error.
type httpStatus interface{ HTTPStatusCode() int }

func wrapNotFound(err error) error {
	var status httpStatus
	// The status covers S3 errors that did not come through gocloud.
	if gcerrors.Code(err) == gcerrors.NotFound || errors.Is(err, os.ErrNotExist) ||
		errors.As(err, &status) && status.HTTPStatusCode() == http.StatusNotFound {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}
