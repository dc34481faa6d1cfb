package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"gocloud.dev/blob"
)

// ReaderAt gives random access to one object, for SFTP downloads whose read
// requests arrive slightly out of order.
type ReaderAt struct {
	store *Store
	ctx   context.Context
	key   string
	size  int64

	mu     sync.Mutex
	direct *os.File     // local files are read with pread: no stream to keep in step
	r      *blob.Reader // object stores: the open stream
	pos    int64        // offset of r
}

// maxSkip is how far ahead a read may be served by discarding bytes from the
// open stream instead of opening a new one.
const maxSkip = 1 << 20

// OpenReaderAt opens key for random access.
func (s *Store) OpenReaderAt(ctx context.Context, key string) (*ReaderAt, error) {
	if s.local() {
		f, fi, err := s.openLocal(key)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", key, err)
		}
		return &ReaderAt{store: s, ctx: ctx, key: key, size: fi.Size(), direct: f}, nil
	}
	r, err := s.bucket.NewReader(ctx, key, nil)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, wrapNotFound(err))
	}
	return &ReaderAt{store: s, ctx: ctx, key: key, size: r.Size(), r: r}, nil
}

// Size is the object's length.
func (ra *ReaderAt) Size() int64 { return ra.size }

// ReadAt implements io.ReaderAt.
func (ra *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= ra.size {
		return 0, io.EOF
	}
	if ra.direct != nil {
		return ra.direct.ReadAt(p, off)
	}
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if off < ra.pos || off > ra.pos+maxSkip {
		if err := ra.reopen(off); err != nil {
			return 0, err
		}
	}
	if skip := off - ra.pos; skip > 0 {
		n, err := io.CopyN(io.Discard, ra.r, skip)
		ra.pos += n
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", ra.key, err)
		}
	}
	n, err := io.ReadFull(ra.r, p[:min(int64(len(p)), ra.size-off)])
	ra.pos += int64(n)
	if err == nil && n < len(p) {
		err = io.EOF
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	}
	return n, err
}

func (ra *ReaderAt) reopen(off int64) error {
	if err := ra.r.Close(); err != nil {
		return fmt.Errorf("read %s: %w", ra.key, err)
	}
	r, err := ra.store.bucket.NewRangeReader(ra.ctx, ra.key, off, -1, nil)
	if err != nil {
		return fmt.Errorf("read %s at %d: %w", ra.key, off, wrapNotFound(err))
	}
	ra.r, ra.pos = r, off
	return nil
}

// Close releases the object.
func (ra *ReaderAt) Close() error {
	if ra.direct != nil {
		return ra.direct.Close()
	}
	ra.mu.Lock()
	defer ra.mu.Unlock()
	return ra.r.Close()
}
