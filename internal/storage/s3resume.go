package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// s3Resumable stages an object in a multipart upload of its own, rather
// than through the transfer manager, so that a write cut off can be
// suspended: its parts stay in the open upload, and the tail that does not
// fill a part (every part but the last must be at least 5 MiB) goes to an
// object of its own under KeptDir. Resume reads the tail back and goes on
// with the next part. One part is sent while the next fills, as Stage does.
type s3Resumable struct {
	ctx      context.Context
	client   *s3.Client
	bucket   string
	key      string // in the bucket, the store's prefix included
	tailKey  string
	partSize int

	state   s3Checkpoint // the parts sent
	buf     []byte       // the part filling
	spare   []byte       // the buffer of the part in flight, for the next
	sending chan error   // the part in flight's outcome; nil when none
	sent    s3Part       // the part in flight, once sending has answered
	err     error        // the first failure; sticky
}

// s3Checkpoint is an S3 store's Checkpoint.State.
type s3Checkpoint struct {
	UploadID string   `json:"upload_id,omitempty"` // "" until the first part is sent
	Parts    []s3Part `json:"parts,omitempty"`
	Tail     int64    `json:"tail,omitempty"` // bytes in the tail object
}

type s3Part struct {
	Number int32  `json:"n"`
	ETag   string `json:"etag"`
	CRC32  string `json:"crc32,omitempty"`
	Size   int64  `json:"size"`
}

func (c s3Checkpoint) size() int64 {
	n := c.Tail
	for _, p := range c.Parts {
		n += p.Size
	}
	return n
}

// StageResumable is Stage for a write that may be suspended (see Suspend):
// local directories and S3 keep what it staged; other stores refuse to.
func (s *Store) StageResumable(ctx context.Context, key string, maxSize int64) (*Staged, error) {
	if s.scheme != "s3" {
		return s.Stage(ctx, key, maxSize)
	}
	w, err := s.newS3Resumable(ctx, key, maxSize)
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", key, err)
	}
	return w.staged(), nil
}

func (s *Store) newS3Resumable(ctx context.Context, key string, maxSize int64) (*s3Resumable, error) {
	var client *s3.Client
	if !s.bucket.As(&client) {
		return nil, fmt.Errorf("%s is not an S3 bucket", s)
	}
	return &s3Resumable{
		ctx: ctx, client: client, bucket: s.name, key: s.prefix + key,
		tailKey: s.prefix + KeptDir + "/" + key, partSize: int(partSize(maxSize)),
	}, nil
}

func (w *s3Resumable) staged() *Staged {
	ctx, cancel := context.WithCancel(w.ctx)
	w.ctx = ctx
	return &Staged{w: w, close: w.commit, abort: w.abort, cancel: cancel, suspend: w.suspend}
}

func (w *s3Resumable) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 && w.err == nil {
		k := min(len(p), w.partSize-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p, n = p[k:], n+k
		if len(w.buf) == w.partSize {
			w.err = w.sendPart()
		}
	}
	return n, w.err
}

// sendPart starts sending the filled buffer as the next part, once the
// part before it is in.
func (w *s3Resumable) sendPart() error {
	if err := w.wait(); err != nil {
		return err
	}
	if w.state.UploadID == "" {
		out, err := w.client.CreateMultipartUpload(w.ctx, &s3.CreateMultipartUploadInput{
			Bucket: &w.bucket, Key: &w.key, ContentType: aws.String(contentType), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
		})
		if err != nil {
			return fmt.Errorf("start multipart upload: %w", err)
		}
		w.state.UploadID = aws.ToString(out.UploadId)
	}
	body := w.buf
	w.buf, w.spare = w.spare[:0], nil
	num := int32(len(w.state.Parts) + 1)
	done := make(chan error, 1)
	w.sending = done
	go func() {
		out, err := w.client.UploadPart(w.ctx, &s3.UploadPartInput{
			Bucket: &w.bucket, Key: &w.key, UploadId: &w.state.UploadID, PartNumber: &num,
			Body: bytes.NewReader(body), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
		})
		if err == nil {
			w.sent = s3Part{Number: num, ETag: aws.ToString(out.ETag), CRC32: aws.ToString(out.ChecksumCRC32), Size: int64(len(body))}
		}
		w.spare = body
		done <- err
	}()
	return nil
}

// wait waits for the part in flight, if any, and counts it.
func (w *s3Resumable) wait() error {
	if w.sending == nil {
		return nil
	}
	err := <-w.sending
	w.sending = nil
	if err != nil {
		return fmt.Errorf("upload part: %w", err)
	}
	w.state.Parts = append(w.state.Parts, w.sent)
	return nil
}

func (w *s3Resumable) commit() error {
	if w.err == nil {
		w.err = w.complete()
	}
	if errors.Is(w.err, errAborted) {
		return errAbortedWrite
	}
	if w.err != nil {
		w.discard()
	}
	return w.err
}

func (w *s3Resumable) complete() error {
	if err := w.wait(); err != nil {
		return err
	}
	if w.state.UploadID == "" { // smaller than a part: one PutObject
		_, err := w.client.PutObject(w.ctx, &s3.PutObjectInput{
			Bucket: &w.bucket, Key: &w.key, Body: bytes.NewReader(w.buf),
			ContentType: aws.String(contentType), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
		})
		return err
	}
	if len(w.buf) > 0 {
		if err := w.sendPart(); err != nil {
			return err
		}
		if err := w.wait(); err != nil {
			return err
		}
	}
	parts := make([]types.CompletedPart, len(w.state.Parts))
	for i, p := range w.state.Parts {
		parts[i] = types.CompletedPart{PartNumber: aws.Int32(p.Number), ETag: aws.String(p.ETag)}
		if p.CRC32 != "" {
			parts[i].ChecksumCRC32 = aws.String(p.CRC32)
		}
	}
	_, err := w.client.CompleteMultipartUpload(w.ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &w.bucket, Key: &w.key, UploadId: &w.state.UploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return fmt.Errorf("complete multipart upload: %w", err)
	}
	return nil
}

func (w *s3Resumable) abort() {
	if w.err == nil {
		w.err = errAborted
	}
	w.discard()
}

// discard aborts the multipart upload, whose parts S3 would otherwise keep
// (and bill), with a context of its own: the write's may be cancelled.
func (w *s3Resumable) discard() {
	_ = w.wait()
	if w.state.UploadID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), time.Minute)
	defer cancel()
	_ = abortMultipart(ctx, w.client, w.bucket, w.key, w.state.UploadID) // best effort: a lifecycle rule is the backstop
	w.state.UploadID = ""
}

func abortMultipart(ctx context.Context, client *s3.Client, bucket, key, uploadID string) error {
	_, err := client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &bucket, Key: &key, UploadId: &uploadID})
	var missing *types.NoSuchUpload
	if errors.As(err, &missing) {
		return nil
	}
	return err
}

// suspend keeps the parts sent in the open upload and the tail in its own
// object.
func (w *s3Resumable) suspend(ctx context.Context) (Checkpoint, error) {
	if w.err != nil {
		return Checkpoint{}, w.err
	}
	if err := w.wait(); err != nil {
		return Checkpoint{}, err
	}
	w.state.Tail = int64(len(w.buf))
	if w.state.Tail > 0 {
		_, err := w.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: &w.bucket, Key: &w.tailKey, Body: bytes.NewReader(w.buf),
			ContentType: aws.String(contentType), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
		})
		if err != nil {
			return Checkpoint{}, fmt.Errorf("keep the tail: %w", err)
		}
	}
	state, _ := json.Marshal(w.state) // cannot fail
	w.err = errWriteEnded
	return Checkpoint{Size: w.state.size(), State: string(state)}, nil
}

func parseS3Checkpoint(cp Checkpoint) (s3Checkpoint, error) {
	var c s3Checkpoint
	if err := json.Unmarshal([]byte(cp.State), &c); err != nil {
		return c, fmt.Errorf("checkpoint: %w", err)
	}
	if c.size() != cp.Size {
		return c, fmt.Errorf("checkpoint: its parts hold %d bytes, not %d", c.size(), cp.Size)
	}
	return c, nil
}

// resumeS3 goes on with the multipart upload of cp, the tail read back
// into the part filling. The tail object goes at once: the upload is this
// write's now, and a suspend keeps a new tail.
func (s *Store) resumeS3(ctx context.Context, key string, maxSize int64, cp Checkpoint) (*Staged, error) {
	c, err := parseS3Checkpoint(cp)
	if err != nil {
		return nil, err
	}
	w, err := s.newS3Resumable(ctx, key, maxSize)
	if err != nil {
		return nil, err
	}
	w.state = c
	if c.Tail > 0 {
		if w.buf, err = w.readTail(ctx, c.Tail); err != nil {
			return nil, err
		}
		if _, err := w.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &w.bucket, Key: &w.tailKey}); err != nil {
			return nil, fmt.Errorf("delete the tail read back: %w", err)
		}
	}
	w.state.Tail = 0
	return w.staged(), nil
}

func (w *s3Resumable) readTail(ctx context.Context, size int64) ([]byte, error) {
	out, err := w.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &w.bucket, Key: &w.tailKey})
	if err != nil {
		return nil, fmt.Errorf("read the tail kept: %w", wrapNotFound(err))
	}
	defer out.Body.Close()
	buf := make([]byte, 0, w.partSize)
	buf, err = readUpTo(buf, out.Body, size)
	if err != nil {
		return nil, fmt.Errorf("read the tail kept: %w", err)
	}
	return buf, nil
}

// readUpTo appends exactly n bytes of r to buf.
func readUpTo(buf []byte, r io.Reader, n int64) ([]byte, error) {
	b := bytes.NewBuffer(buf)
	got, err := io.Copy(b, io.LimitReader(r, n+1))
	if err == nil && got != n {
		err = fmt.Errorf("%d bytes, want %d", got, n)
	}
	return b.Bytes(), err
}

// discardS3 aborts the multipart upload of cp and deletes its tail.
func (s *Store) discardS3(ctx context.Context, key string, cp Checkpoint) error {
	c, err := parseS3Checkpoint(cp)
	if err != nil {
		return err
	}
	w, err := s.newS3Resumable(ctx, key, 0)
	if err != nil {
		return err
	}
	if c.UploadID != "" {
		if err := abortMultipart(ctx, w.client, w.bucket, w.key, c.UploadID); err != nil {
			return fmt.Errorf("abort multipart upload: %w", err)
		}
	}
	if _, err := w.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &w.bucket, Key: &w.tailKey}); err != nil && !errors.Is(wrapNotFound(err), ErrNotFound) {
		return fmt.Errorf("delete the tail: %w", err)
	}
	return nil
}
