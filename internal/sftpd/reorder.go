package sftpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"
)

// Errors of the reorder window, checked by the SFTP edge with errors.Is.
var (
	ErrTooLarge      = errors.New("file exceeds the maximum file size")
	ErrNotSequential = errors.New("non-sequential write")
)

// reorderWindow turns the concurrent, slightly out-of-order WriteAt calls of
// an SFTP upload into one in-order stream. Writes ahead of the stream are
// copied into a buffer of at most window bytes; a writer that does not fit
// waits for the gap to fill, and gives up after stall. Memory per upload is
// therefore bounded by window, whatever the file size.
type reorderWindow struct {
	sink   io.Writer
	limit  int64         // maximum stream length in bytes
	window int           // maximum bytes held ahead of the stream
	stall  time.Duration // how long a writer waits for a gap to fill

	mu       sync.Mutex
	next     int64            // bytes written to sink so far
	ahead    map[int64][]byte // chunks waiting for the stream to reach them
	buffered int              // bytes held in ahead
	err      error            // first failure; sticky
	changed  chan struct{}    // closed and replaced whenever next or err changes
}

// newReorderWindow starts a stream at offset from: the bytes before it
// were received already (a resumed upload), and rewriting them is refused.
func newReorderWindow(sink io.Writer, from, limit int64, window int, stall time.Duration) *reorderWindow {
	return &reorderWindow{
		sink:    sink,
		next:    from,
		limit:   limit,
		window:  window,
		stall:   stall,
		ahead:   make(map[int64][]byte),
		changed: make(chan struct{}),
	}
}

// WriteAt accepts p at offset off. ctx bounds the wait for a gap to fill.
func (w *reorderWindow) WriteAt(ctx context.Context, p []byte, off int64) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	switch end := off + int64(len(p)); {
	case off < 0 || end < off:
		return 0, w.fail(fmt.Errorf("%w: invalid offset %d", ErrNotSequential, off))
	case end > w.limit:
		return 0, w.fail(fmt.Errorf("%w: a write ends at byte %d, the limit is %d bytes", ErrTooLarge, end, w.limit))
	case len(p) == 0:
		return 0, nil
	case off < w.next:
		return 0, w.fail(fmt.Errorf("%w: offset %d rewrites bytes already received (%d so far)", ErrNotSequential, off, w.next))
	}
	for off > w.next && w.buffered+len(p) > w.window {
		if err := w.waitLocked(ctx); err != nil {
			return 0, err
		}
	}
	if off < w.next { // the stream overtook this write while it waited
		return 0, w.fail(fmt.Errorf("%w: offset %d rewrites bytes already received (%d so far)", ErrNotSequential, off, w.next))
	}
	if off > w.next {
		if _, dup := w.ahead[off]; dup {
			return 0, w.fail(fmt.Errorf("%w: offset %d written twice", ErrNotSequential, off))
		}
		w.ahead[off] = append([]byte(nil), p...)
		w.buffered += len(p)
		return len(p), nil
	}
	if err := w.emitLocked(p); err != nil {
		return 0, err
	}
	for {
		chunk, ok := w.ahead[w.next]
		if !ok {
			break
		}
		delete(w.ahead, w.next)
		w.buffered -= len(chunk)
		if err := w.emitLocked(chunk); err != nil {
			return 0, err
		}
	}
	if len(w.ahead) > 0 && w.lowestAheadLocked() < w.next {
		return 0, w.fail(fmt.Errorf("%w: overlapping writes before offset %d", ErrNotSequential, w.next))
	}
	return len(p), nil
}

func (w *reorderWindow) emitLocked(p []byte) error {
	if _, err := w.sink.Write(p); err != nil {
		return w.fail(err)
	}
	w.next += int64(len(p))
	w.signalLocked()
	return nil
}

// waitLocked releases the lock until the stream moves, the window fails, ctx
// ends, or the stall timeout passes.
func (w *reorderWindow) waitLocked(ctx context.Context) error {
	changed := w.changed
	w.mu.Unlock()
	timer := time.NewTimer(w.stall)
	defer timer.Stop()
	var err, stalled error
	select {
	case <-changed:
	case <-ctx.Done():
		err = ctx.Err()
	case <-timer.C:
		stalled = ErrNotSequential
	}
	w.mu.Lock()
	switch {
	case stalled != nil:
		return w.fail(fmt.Errorf("%w: no data arrived for offset %d within %s", stalled, w.next, w.stall))
	case err != nil:
		return w.fail(err)
	}
	return w.err
}

func (w *reorderWindow) fail(err error) error {
	if w.err == nil {
		w.err = err
		w.signalLocked()
	}
	return w.err
}

func (w *reorderWindow) signalLocked() {
	close(w.changed)
	w.changed = make(chan struct{})
}

func (w *reorderWindow) lowestAheadLocked() int64 {
	return slices.Min(slices.Collect(maps.Keys(w.ahead)))
}

// Finish reports the stream length once every write has landed, or why the
// stream is incomplete.
func (w *reorderWindow) Finish() (int64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.next, w.err
	}
	if len(w.ahead) > 0 {
		return w.next, w.fail(fmt.Errorf("%w: the upload has a gap: no data from offset %d to %d",
			ErrNotSequential, w.next, w.lowestAheadLocked()))
	}
	return w.next, nil
}

// Abort fails the window so that waiting and later writers return err.
func (w *reorderWindow) Abort(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	_ = w.fail(err)
}
