package storage

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
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

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"gocloud.dev/blob/s3blob"
)

// ErrChecksumMismatch reports copied bytes that are not the expected ones.
var ErrChecksumMismatch = errors.New("checksum mismatch")

// ErrVerify reports a delivered object that does not read back as expected.
var ErrVerify = errors.New("delivered object does not verify")

// CopyOptions say what a delivered object must be.
type CopyOptions struct {
	Size   int64  // expected size in bytes
	SHA256 string // expected lowercase hex sha256 of the content
	KMSKey string
	// Shared: the source is not airlock's own but may still be written by
	// others (an export area), so it is never hard-linked, which would let
	// a write to it change what was delivered.
	Shared bool
}

// CopyResult says how Copy delivered.
type CopyResult struct {
	ServerSide bool // S3 copied the object itself
	Linked     bool // a hard link on one filesystem: no bytes were written
}

// sha256Metadata names the metadata that lets Verify check a delivered
// object with a HEAD instead of reading it back.
const sha256Metadata = "airlock-sha256"

// maxCopyObjectSize is the largest object one S3 CopyObject may copy.
const maxCopyObjectSize = 5 << 30

// Copy copies srcKey of src to dstKey of dst so that dstKey appears complete
// or not at all, never half:
//   - server-side (S3 CopyObject, metadata replaced, SSE-KMS when
//     opts.KMSKey is set) when both stores are S3 with the same connection
//     parameters (endpoint, region, credentials) and the object is at most
//     5 GiB; the store's own sha256 of the copy must match, or the copy is
//     deleted again and the error wraps ErrChecksumMismatch;
//   - by a hard link when both stores are local directories on one
//     filesystem (and no KMS key is asked for, and the source is not
//     Shared): the source is hashed, the
//     file and its new name synced, and no bytes are written;
//   - otherwise streamed through a staged object on dst, hashed on the way.
//
// Bytes that do not match opts leave nothing at dstKey and an error
// wrapping ErrChecksumMismatch.
//
// Every delivered object carries metadata "airlock-sha256" (object stores
// only; local directories keep no metadata). Copy then verifies dstKey
// (see verifyCopy) and returns an error wrapping ErrVerify if it does not.
func Copy(ctx context.Context, dst *Store, dstKey string, src *Store, srcKey string, opts CopyOptions) (CopyResult, error) {
	var res CopyResult
	if err := deliver(ctx, dst, dstKey, src, srcKey, opts, &res); err != nil {
		return res, fmt.Errorf("copy %s to %s: %w", srcKey, dstKey, err)
	}
	return res, nil
}

func deliver(ctx context.Context, dst *Store, dstKey string, src *Store, srcKey string, opts CopyOptions, res *CopyResult) error {
	if err := opts.check(); err != nil {
		return err
	}
	var err error
	switch {
	case copiesServerSide(dst, dstKey, src, srcKey, opts.Size):
		res.ServerSide = true
		err = copyServerSide(ctx, dst, dstKey, src, srcKey, opts)
	case dst.local() && src.local() && opts.KMSKey == "" && !opts.Shared:
		if res.Linked, err = linkLocal(dst, dstKey, src, srcKey, opts); err == nil && !res.Linked {
			err = copyStreamed(ctx, dst, dstKey, src, srcKey, opts)
		}
	default:
		err = copyStreamed(ctx, dst, dstKey, src, srcKey, opts)
	}
	if err != nil {
		return err
	}
	ok, err := dst.verifyCopy(ctx, dstKey, opts)
	if err != nil {
		return err
	}
	if !ok {
		return ErrVerify
	}
	return nil
}

// verifyCopy checks what a copy wrote. Object stores are asked (Verify).
// A local file is checked by its size alone: its bytes were hashed on
// their way in and synced, and reading them back would only read the page
// cache, proving nothing about the disk for the cost of a second read.
func (s *Store) verifyCopy(ctx context.Context, key string, opts CopyOptions) (bool, error) {
	if !s.local() {
		return s.Verify(ctx, key, opts.Size, opts.SHA256)
	}
	a, err := s.Stat(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("verify: %w", err)
	}
	return a.Size == opts.Size, nil
}

func (o CopyOptions) check() error {
	if o.Size < 0 {
		return fmt.Errorf("negative size %d", o.Size)
	}
	if sum, err := hex.DecodeString(o.SHA256); err != nil || len(sum) != sha256.Size || o.SHA256 != strings.ToLower(o.SHA256) {
		return fmt.Errorf("sha256 %q is not 64 lowercase hex digits", o.SHA256)
	}
	return nil
}

// copiesServerSide reports whether S3 can copy the object itself. The
// request carries one client's credentials, so both stores must connect
// alike (a different endpoint, region or profile changes a parameter).
// It also names the keys directly, so they must be keys gocloud stores
// unescaped, and it bypasses gocloud's writer, so dst must not rely on
// the URL's own encryption parameters.
func copiesServerSide(dst *Store, dstKey string, src *Store, srcKey string, size int64) bool {
	return dst.scheme == s3blob.Scheme && src.scheme == s3blob.Scheme &&
		dst.query.Encode() == src.query.Encode() &&
		!dst.query.Has("ssetype") && !dst.query.Has("kmskeyid") &&
		size <= maxCopyObjectSize &&
		plainKey(dst.prefix+dstKey) && plainKey(src.prefix+srcKey)
}

// plainKey reports whether s3blob stores key as it is: it escapes control
// characters and the slash of "../".
func plainKey(key string) bool {
	return !strings.ContainsFunc(key, func(r rune) bool { return r < 0x20 }) && !strings.Contains(key, "../")
}

// copySource is the x-amz-copy-source of key in bucket: percent-encoded
// throughout, since S3 URL-decodes it and some stores (versitygw) decode a
// "+" as a space.
func copySource(bucket, key string) string {
	return strings.ReplaceAll(url.QueryEscape(bucket+"/"+key), "+", "%20")
}

func copyServerSide(ctx context.Context, dst *Store, dstKey string, src *Store, srcKey string, opts CopyOptions) error {
	var client *s3.Client
	if !dst.bucket.As(&client) {
		return fmt.Errorf("%s is not an S3 bucket", dst)
	}
	in := &s3.CopyObjectInput{
		Bucket:            aws.String(dst.name),
		Key:               aws.String(dst.prefix + dstKey),
		CopySource:        aws.String(copySource(src.name, src.prefix+srcKey)),
		ContentType:       aws.String(contentType),
		MetadataDirective: types.MetadataDirectiveReplace,
		Metadata:          map[string]string{sha256Metadata: opts.SHA256},
		// The store hashes the bytes it copies: the check a streamed copy
		// makes while reading.
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
	}
	if opts.KMSKey != "" {
		in.ServerSideEncryption = types.ServerSideEncryptionAwsKms
		in.SSEKMSKeyId = aws.String(opts.KMSKey)
	}
	out, err := client.CopyObject(ctx, in)
	if err != nil {
		return wrapNotFound(err)
	}
	if !copiedSHA256Is(out.CopyObjectResult, opts.SHA256) {
		// The copy is whole but holds other bytes than its metadata says.
		mismatch := fmt.Errorf("%w: the store hashed the copy to sha256 %s (base64), want %s",
			ErrChecksumMismatch, aws.ToString(out.CopyObjectResult.ChecksumSHA256), opts.SHA256)
		return errors.Join(mismatch, dst.Delete(ctx, dstKey))
	}
	return nil
}

// copiedSHA256Is reports whether the store's sha256 of the copied object
// is want. A store that reports none (or only a checksum of part
// checksums) leaves the check to Verify's size.
func copiedSHA256Is(r *types.CopyObjectResult, want string) bool {
	if r == nil || r.ChecksumSHA256 == nil || r.ChecksumType == types.ChecksumTypeComposite {
		return true
	}
	sum, err := hex.DecodeString(want)
	return err == nil && base64.StdEncoding.EncodeToString(sum) == *r.ChecksumSHA256
}

func copyStreamed(ctx context.Context, dst *Store, dstKey string, src *Store, srcKey string, opts CopyOptions) error {
	r, err := src.NewRangeReader(ctx, srcKey, 0, -1)
	if err != nil {
		return err
	}
	defer r.Close()
	st, err := dst.stage(ctx, dstKey, opts.Size, WriteOptions{
		KMSKey:   opts.KMSKey,
		Metadata: map[string]string{sha256Metadata: opts.SHA256},
		// The source is deleted once the copy is recorded.
		Durable: true,
	})
	if err != nil {
		return err
	}
	if err := opts.match(hashCopy(st, r, opts.Size)); err != nil {
		st.Abort()
		return err
	}
	return st.Commit()
}

// match returns what hashCopy returned as an error, or one wrapping
// ErrChecksumMismatch if the bytes it read are not those opts describe.
func (o CopyOptions) match(n int64, sum string, err error) error {
	if err == nil && (n != o.Size || sum != o.SHA256) {
		err = fmt.Errorf("%w: read %d bytes with sha256 %s, want %d bytes with sha256 %s",
			ErrChecksumMismatch, n, sum, o.Size, o.SHA256)
	}
	return err
}

// link is os.Link; tests replace it to stand for filesystems that cannot
// link.
var link = os.Link

// linkLocal delivers a file of one local store to another by a hard link,
// as S3 copies an object within itself: between directories of one
// filesystem a copy would only write the same bytes a second time, most
// of a delivery's CPU. The source is still hashed, the check a
// streamed copy makes on the way, and synced with the new name's
// directory before Copy returns, since the source is deleted once the
// delivery is recorded. It reports false, having done nothing, when a
// link would not do: the filesystem cannot link the two (another device,
// no hard links, no permission to link a file of another owner), the
// source is not a regular file, or the link would not get the group or
// permissions a copy would (see linksLikeCopies).
func linkLocal(dst *Store, dstKey string, src *Store, srcKey string, opts CopyOptions) (bool, error) {
	from, err := localPath(src.open, srcKey)
	if err != nil {
		return false, err
	}
	to, err := localPath(dst.open, dstKey)
	if err != nil {
		return false, err
	}
	fi, err := os.Lstat(from)
	if err != nil {
		return false, wrapNotFound(err)
	}
	if !fi.Mode().IsRegular() {
		return false, nil
	}
	var staged string
	err = inStaging(dst.open, func(name string) error {
		if like, err := linksLikeCopies(filepath.Dir(name), fi); err != nil || !like {
			if err == nil {
				err = errUnlike
			}
			return err
		}
		staged = name
		err := link(from, name)
		if errors.Is(err, os.ErrNotExist) {
			if _, serr := os.Lstat(from); serr != nil {
				// The source went, not the staging directory.
				return fmt.Errorf("%w: %v", ErrNotFound, err)
			}
		}
		return err
	})
	if err != nil {
		removeStaging(filepath.Join(dst.open, StagingDir))
	}
	switch {
	case errors.Is(err, errUnlike) || cannotLink(err):
		return false, nil
	case err != nil:
		return false, err
	}
	f, err := os.Open(staged)
	if err == nil {
		err = lockStaged(f)
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		_ = os.Remove(staged) // the error from Open is the one worth reporting
		return false, err
	}
	l := &localStaged{f: f, path: staged, final: to, durable: true}
	if err := opts.match(hashCopy(io.Discard, f, opts.Size)); err != nil {
		l.abort()
		return false, err
	}
	return true, l.commit()
}

// errUnlike is why linkLocal copies: the link would not look like a copy.
var errUnlike = errors.New("a link would not look like a copy")

// cannotLink reports whether a link failed for want of support rather
// than for something a copy would trip on too.
func cannotLink(err error) bool {
	for _, errno := range []syscall.Errno{syscall.EXDEV, syscall.EPERM, syscall.EMLINK, syscall.EOPNOTSUPP} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// Verify reports whether key holds exactly the expected object: for object
// stores a HEAD (size and airlock-sha256 metadata); for local directories,
// which keep no metadata, the size and a re-read sha256. A missing key is
// (false, nil).
func (s *Store) Verify(ctx context.Context, key string, size int64, sha256hex string) (bool, error) {
	a, err := s.Stat(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("verify: %w", err)
	}
	if a.Size != size {
		return false, nil
	}
	if !s.local() {
		return a.Metadata[sha256Metadata] == sha256hex, nil
	}
	return s.contentIs(ctx, key, size, sha256hex)
}

func (s *Store) contentIs(ctx context.Context, key string, size int64, sha256hex string) (bool, error) {
	r, err := s.NewRangeReader(ctx, key, 0, -1)
	if err != nil {
		return false, fmt.Errorf("verify: %w", err)
	}
	defer r.Close()
	n, sum, err := hashCopy(io.Discard, r, size)
	if err != nil {
		return false, fmt.Errorf("verify %s: %w", key, err)
	}
	return n == size && sum == sha256hex, nil
}

// hashCopy copies r to w and hashes it, reading at most one byte more than
// size: enough to tell a longer object without reading all of it.
func hashCopy(w io.Writer, r io.Reader, size int64) (int64, string, error) {
	h := sha256.New()
	n, err := copyBuffered(io.MultiWriter(w, h), io.LimitReader(r, size+1))
	if err != nil {
		return n, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// copyBuffers are shared by all copies: a delivery worker moves one file
// after another and should not allocate a buffer for each.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// copyBuffered is io.Copy through a pooled buffer.
func copyBuffered(w io.Writer, r io.Reader) (int64, error) {
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	return io.CopyBuffer(w, r, *buf)
}
