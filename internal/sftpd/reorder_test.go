package sftpd

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingSink is the in-order stream a reorderWindow writes to. It fails
// the test if the window ever writes to it from two goroutines at once.
type recordingSink struct {
	t      *testing.T
	mu     sync.Mutex
	busy   bool
	buf    bytes.Buffer
	writes int
	err    error // returned by every Write when set
}

func (s *recordingSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	if s.busy {
		s.t.Error("sink written concurrently")
	}
	s.busy = true
	s.mu.Unlock()
	defer func() { s.mu.Lock(); s.busy = false; s.mu.Unlock() }()
	if s.err != nil {
		return 0, s.err
	}
	s.writes++
	return s.buf.Write(p)
}

func (s *recordingSink) bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.buf.Bytes())
}

// source returns n deterministic, position-dependent bytes, so that a chunk
// written at the wrong offset cannot go unnoticed.
func source(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 42))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// waitProbe is a context that tells when a writer has started waiting for a
// gap to fill: reorderWindow.waitLocked asks for Done only after releasing
// the lock, so from then on other writes proceed and wake the waiter.
type waitProbe struct {
	context.Context
	once    sync.Once
	waiting chan struct{}
}

func newWaitProbe(ctx context.Context) *waitProbe {
	return &waitProbe{Context: ctx, waiting: make(chan struct{})}
}

func (p *waitProbe) Done() <-chan struct{} {
	p.once.Do(func() { close(p.waiting) })
	return p.Context.Done()
}

// awaitWaiting fails the test unless the probed writer starts waiting soon.
func (p *waitProbe) awaitWaiting(t *testing.T) {
	t.Helper()
	select {
	case <-p.waiting:
	case <-time.After(10 * time.Second):
		t.Fatal("the writer never started waiting for the gap to fill")
	}
}

// checkInvariants verifies the bookkeeping of w against the sink.
func checkInvariants(t *testing.T, w *reorderWindow, sink *recordingSink) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	held := 0
	for off, chunk := range w.ahead {
		held += len(chunk)
		if w.err == nil && off <= w.next { // a failed window keeps what it held
			t.Errorf("chunk at %d held although the stream is at %d", off, w.next)
		}
	}
	if held != w.buffered {
		t.Errorf("buffered = %d, but ahead holds %d bytes", w.buffered, held)
	}
	if w.buffered > w.window {
		t.Errorf("buffered = %d bytes, more than the window of %d", w.buffered, w.window)
	}
	if got := int64(len(sink.bytes())); got != w.next {
		t.Errorf("next = %d, but the sink has %d bytes", w.next, got)
	}
}

func TestReorderWindow(t *testing.T) {
	t.Parallel()
	type write struct {
		off     int64
		n       int
		wantErr error // nil: must succeed
		msg     string
	}
	tests := []struct {
		name      string
		limit     int64
		window    int
		writes    []write
		finishErr error
		finishMsg string
		wantSink  int // bytes of the source the sink must hold, in order
	}{
		{
			name: "in order", limit: 100, window: 16,
			writes:   []write{{off: 0, n: 10}, {off: 10, n: 10}, {off: 20, n: 5}},
			wantSink: 25,
		},
		{
			name: "shuffled within the window", limit: 100, window: 30,
			writes:   []write{{off: 10, n: 10}, {off: 30, n: 10}, {off: 20, n: 10}, {off: 0, n: 10}, {off: 40, n: 3}},
			wantSink: 43,
		},
		{
			name: "reverse order", limit: 100, window: 40,
			writes:   []write{{off: 40, n: 10}, {off: 30, n: 10}, {off: 20, n: 10}, {off: 10, n: 10}, {off: 0, n: 10}},
			wantSink: 50,
		},
		{
			name: "in-order write larger than the window", limit: 100, window: 4,
			writes:   []write{{off: 0, n: 64}},
			wantSink: 64,
		},
		{
			name: "exactly at the limit", limit: 30, window: 16,
			writes:   []write{{off: 0, n: 10}, {off: 20, n: 10}, {off: 10, n: 10}},
			wantSink: 30,
		},
		{
			name: "one byte over the limit", limit: 30, window: 16,
			writes: []write{
				{off: 0, n: 10}, {off: 10, n: 10},
				{off: 20, n: 11, wantErr: ErrTooLarge, msg: "the limit is 30 bytes"},
				{off: 20, n: 10, wantErr: ErrTooLarge}, // sticky
			},
			finishErr: ErrTooLarge, wantSink: 20,
		},
		{
			name: "over the limit while ahead of the stream", limit: 30, window: 64,
			writes: []write{
				{off: 10, n: 10},
				{off: 25, n: 6, wantErr: ErrTooLarge, msg: "ends at byte 31"},
				{off: 0, n: 10, wantErr: ErrTooLarge},
			},
			finishErr: ErrTooLarge, wantSink: 0,
		},
		{
			name: "rewrite of an earlier offset", limit: 100, window: 16,
			writes: []write{
				{off: 0, n: 10},
				{off: 5, n: 10, wantErr: ErrNotSequential, msg: "rewrites bytes already received"},
			},
			finishErr: ErrNotSequential, wantSink: 10,
		},
		{
			name: "rewrite of offset zero", limit: 100, window: 16,
			writes: []write{
				{off: 0, n: 10},
				{off: 0, n: 10, wantErr: ErrNotSequential, msg: "rewrites"},
			},
			finishErr: ErrNotSequential, wantSink: 10,
		},
		{
			name: "duplicate offset ahead of the stream", limit: 100, window: 16,
			writes: []write{
				{off: 10, n: 5},
				{off: 10, n: 5, wantErr: ErrNotSequential, msg: "written twice"},
			},
			finishErr: ErrNotSequential, wantSink: 0,
		},
		{
			name: "overlapping chunks ahead of the stream", limit: 100, window: 32,
			writes: []write{
				{off: 10, n: 10}, {off: 15, n: 10},
				{off: 0, n: 10, wantErr: ErrNotSequential, msg: "overlapping"},
			},
			finishErr: ErrNotSequential, wantSink: 20,
		},
		{
			name: "in-order write overlapping a chunk ahead", limit: 100, window: 32,
			writes: []write{
				{off: 10, n: 10},
				{off: 0, n: 15, wantErr: ErrNotSequential, msg: "overlapping"},
			},
			finishErr: ErrNotSequential, wantSink: 15,
		},
		{
			name: "gap at Finish", limit: 100, window: 32,
			writes:    []write{{off: 0, n: 10}, {off: 20, n: 10}},
			finishErr: ErrNotSequential, finishMsg: "gap: no data from offset 10 to 20", wantSink: 10,
		},
		{
			name: "nothing but a chunk ahead", limit: 100, window: 32,
			writes:    []write{{off: 1, n: 1}},
			finishErr: ErrNotSequential, finishMsg: "gap", wantSink: 0,
		},
		{
			name: "negative offset", limit: 100, window: 16,
			writes:    []write{{off: -1, n: 1, wantErr: ErrNotSequential, msg: "invalid offset"}},
			finishErr: ErrNotSequential,
		},
		{
			name: "offset overflow", limit: math.MaxInt64, window: 16,
			writes:    []write{{off: math.MaxInt64 - 1, n: 4, wantErr: ErrNotSequential, msg: "invalid offset"}},
			finishErr: ErrNotSequential,
		},
		{
			name: "empty writes", limit: 10, window: 16,
			writes:   []write{{off: 0, n: 0}, {off: 5, n: 0}, {off: 0, n: 10}, {off: 10, n: 0}},
			wantSink: 10,
		},
		{
			name: "empty upload", limit: 10, window: 16,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := source(200)
			sink := &recordingSink{t: t}
			w := newReorderWindow(sink, 0, tt.limit, tt.window, time.Minute)
			// A cancelled context: a write that would have to wait fails
			// at once instead of blocking the table.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			for i, wr := range tt.writes {
				var p []byte
				if wr.off >= 0 && wr.off <= int64(len(src)-wr.n) {
					p = src[wr.off : wr.off+int64(wr.n)]
				} else {
					p = make([]byte, wr.n)
				}
				n, err := w.WriteAt(ctx, p, wr.off)
				switch {
				case wr.wantErr == nil && err != nil:
					t.Fatalf("write %d (%d bytes at %d): %v", i, wr.n, wr.off, err)
				case wr.wantErr == nil && n != wr.n:
					t.Fatalf("write %d: n = %d, want %d", i, n, wr.n)
				case wr.wantErr != nil && !errors.Is(err, wr.wantErr):
					t.Fatalf("write %d (%d bytes at %d): err = %v, want %v", i, wr.n, wr.off, err, wr.wantErr)
				case wr.wantErr != nil && n != 0:
					t.Errorf("write %d failed but reported %d bytes", i, n)
				}
				if wr.msg != "" && !strings.Contains(err.Error(), wr.msg) {
					t.Errorf("write %d: message %q does not contain %q", i, err, wr.msg)
				}
				checkInvariants(t, w, sink)
			}
			size, err := w.Finish()
			if !errors.Is(err, tt.finishErr) || (tt.finishErr == nil) != (err == nil) {
				t.Fatalf("Finish: err = %v, want %v", err, tt.finishErr)
			}
			if tt.finishMsg != "" && !strings.Contains(err.Error(), tt.finishMsg) {
				t.Errorf("Finish: message %q does not contain %q", err, tt.finishMsg)
			}
			if size != int64(tt.wantSink) {
				t.Errorf("Finish: size = %d, want %d", size, tt.wantSink)
			}
			if got := sink.bytes(); !bytes.Equal(got, src[:tt.wantSink]) {
				t.Errorf("sink holds %d bytes, want the first %d bytes of the source in order", len(got), tt.wantSink)
			}
			// Whatever happened, the sink never saw a byte past the limit.
			if int64(len(sink.bytes())) > tt.limit {
				t.Errorf("sink has %d bytes, past the limit of %d", len(sink.bytes()), tt.limit)
			}
		})
	}
}

// chunks splits n bytes into pieces of size, shuffled within groups of
// group pieces: the out-of-order pattern of a pipelining SFTP client.
func chunks(n, size, group int, seed uint64) [][2]int {
	var out [][2]int
	for off := 0; off < n; off += size {
		out = append(out, [2]int{off, min(size, n-off)})
	}
	r := rand.New(rand.NewPCG(seed, seed))
	for i := 0; i < len(out); i += group {
		g := out[i:min(i+group, len(out))]
		r.Shuffle(len(g), func(a, b int) { g[a], g[b] = g[b], g[a] })
	}
	return out
}

func TestReorderWindowConcurrentWriters(t *testing.T) {
	t.Parallel()
	const (
		size    = 1<<20 + 123
		chunk   = 4 << 10
		group   = 16 // chunks shuffled together
		writers = 8
	)
	for _, seed := range []uint64{1, 2, 3} {
		src := source(size)
		sink := &recordingSink{t: t}
		// The window holds a whole group, so the writer holding the next
		// chunk is never starved.
		w := newReorderWindow(sink, 0, size, group*chunk, 10*time.Second)
		work := make(chan [2]int)
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for range writers {
			wg.Go(func() {
				for c := range work {
					if _, err := w.WriteAt(context.Background(), src[c[0]:c[0]+c[1]], int64(c[0])); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		for _, c := range chunks(size, chunk, group, seed) {
			work <- c
		}
		close(work)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("seed %d: WriteAt: %v", seed, err)
		}
		n, err := w.Finish()
		if err != nil || n != size {
			t.Fatalf("seed %d: Finish = %d, %v; want %d, nil", seed, n, err, size)
		}
		if !bytes.Equal(sink.bytes(), src) {
			t.Fatalf("seed %d: the sink does not hold the source in order", seed)
		}
		checkInvariants(t, w, sink)
	}
}

// blockedWriter starts a write of n bytes at off that cannot fit into the
// window, and returns once it waits for the gap to fill.
func blockedWriter(t *testing.T, ctx context.Context, w *reorderWindow, src []byte, off int64, n int) <-chan error {
	t.Helper()
	probe := newWaitProbe(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := w.WriteAt(probe, src[off:off+int64(n)], off)
		done <- err
	}()
	probe.awaitWaiting(t)
	return done
}

func TestReorderWindowWaitsForTheGap(t *testing.T) {
	t.Parallel()
	src := source(64)
	sink := &recordingSink{t: t}
	w := newReorderWindow(sink, 0, 64, 16, time.Minute)
	ctx := context.Background()
	if _, err := w.WriteAt(ctx, src[16:24], 16); err != nil {
		t.Fatal(err)
	}
	// 8 bytes held; 16 more do not fit into the 16-byte window.
	done := blockedWriter(t, ctx, w, src, 32, 16)
	select {
	case err := <-done:
		t.Fatalf("a write beyond the window returned (%v) before the gap filled", err)
	default:
	}
	if _, err := w.WriteAt(ctx, src[0:16], 0); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the waiting write failed once the gap filled: %v", err)
	}
	if _, err := w.WriteAt(ctx, src[24:32], 24); err != nil {
		t.Fatal(err)
	}
	if n, err := w.Finish(); n != 48 || err != nil {
		t.Fatalf("Finish = %d, %v; want 48, nil", n, err)
	}
	if !bytes.Equal(sink.bytes(), src[:48]) {
		t.Fatal("sink does not hold the source in order")
	}
}

func TestReorderWindowStall(t *testing.T) {
	t.Parallel()
	const stall = 100 * time.Millisecond
	src := source(64)
	sink := &recordingSink{t: t}
	w := newReorderWindow(sink, 0, 64, 16, stall)
	ctx := context.Background()
	if _, err := w.WriteAt(ctx, src[16:24], 16); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := w.WriteAt(ctx, src[32:48], 32) // never fits: the gap 0..16 never fills
	if !errors.Is(err, ErrNotSequential) || !strings.Contains(err.Error(), "no data arrived for offset 0") {
		t.Fatalf("err = %v, want ErrNotSequential naming offset 0", err)
	}
	if took := time.Since(start); took < stall {
		t.Errorf("gave up after %s, before the stall of %s", took, stall)
	}
	// The failure is sticky: the upload is over.
	if _, err2 := w.WriteAt(ctx, src[0:16], 0); !errors.Is(err2, ErrNotSequential) {
		t.Errorf("write after the stall: err = %v, want the stall error", err2)
	}
	if _, err2 := w.Finish(); !errors.Is(err2, ErrNotSequential) {
		t.Errorf("Finish after the stall: err = %v", err2)
	}
	if len(sink.bytes()) != 0 {
		t.Errorf("sink got %d bytes", len(sink.bytes()))
	}
}

func TestReorderWindowContextCancelUnblocks(t *testing.T) {
	t.Parallel()
	src := source(64)
	w := newReorderWindow(&recordingSink{t: t}, 0, 64, 8, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := blockedWriter(t, ctx, w, src, 16, 16)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancelling the context did not unblock the writer")
	}
	if _, err := w.WriteAt(context.Background(), src[0:8], 0); !errors.Is(err, context.Canceled) {
		t.Errorf("later write: err = %v, want the sticky context.Canceled", err)
	}
}

func TestReorderWindowAbort(t *testing.T) {
	t.Parallel()
	errLost := errors.New("connection lost")
	src := source(64)

	t.Run("unblocks a waiting writer", func(t *testing.T) {
		t.Parallel()
		w := newReorderWindow(&recordingSink{t: t}, 0, 64, 8, time.Hour)
		done := blockedWriter(t, context.Background(), w, src, 16, 16)
		w.Abort(errLost)
		select {
		case err := <-done:
			if !errors.Is(err, errLost) {
				t.Fatalf("err = %v, want %v", err, errLost)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Abort did not unblock the writer")
		}
	})

	t.Run("fails later writes and Finish", func(t *testing.T) {
		t.Parallel()
		sink := &recordingSink{t: t}
		w := newReorderWindow(sink, 0, 64, 8, time.Hour)
		if _, err := w.WriteAt(context.Background(), src[:8], 0); err != nil {
			t.Fatal(err)
		}
		w.Abort(errLost)
		w.Abort(errors.New("second abort")) // the first cause stays
		if _, err := w.WriteAt(context.Background(), src[8:16], 8); !errors.Is(err, errLost) {
			t.Errorf("write after Abort: err = %v, want %v", err, errLost)
		}
		if n, err := w.Finish(); !errors.Is(err, errLost) || n != 8 {
			t.Errorf("Finish after Abort = %d, %v; want 8, %v", n, err, errLost)
		}
		if len(sink.bytes()) != 8 {
			t.Errorf("sink has %d bytes after Abort, want 8", len(sink.bytes()))
		}
	})
}

func TestReorderWindowSinkError(t *testing.T) {
	t.Parallel()
	errDisk := errors.New("disk full")
	sink := &recordingSink{t: t, err: errDisk}
	w := newReorderWindow(sink, 0, 64, 8, time.Hour)
	if _, err := w.WriteAt(context.Background(), make([]byte, 4), 0); !errors.Is(err, errDisk) {
		t.Fatalf("err = %v, want %v", err, errDisk)
	}
	if _, err := w.Finish(); !errors.Is(err, errDisk) {
		t.Fatalf("Finish: err = %v, want %v", err, errDisk)
	}
}

// TestReorderWindowOverlapAfterWait: a writer that waited for room must
// re-check its offset, because the stream may have moved past it while it
// waited (an overlapping write from another request).
func TestReorderWindowOverlapAfterWait(t *testing.T) {
	t.Parallel()
	src := source(64)
	sink := &recordingSink{t: t}
	w := newReorderWindow(sink, 0, 64, 10, time.Hour)
	// 20 bytes at 5 never fit into a 10-byte window: the writer waits.
	done := blockedWriter(t, context.Background(), w, src, 5, 20)
	// Another request covers 0..30, overtaking the waiting one.
	if _, err := w.WriteAt(context.Background(), src[0:30], 0); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrNotSequential) {
		t.Errorf("overtaken write: err = %v, want ErrNotSequential", err)
	}
	if got := sink.bytes(); !bytes.Equal(got, src[:len(got)]) {
		t.Errorf("sink holds %d bytes that are not the source prefix: bytes 5..25 were appended at 30", len(got))
	}
}

func FuzzReorderWindow(f *testing.F) {
	f.Add(uint8(200), uint8(32), []byte{0, 10, 10, 10, 20, 10})
	f.Add(uint8(30), uint8(16), []byte{10, 10, 0, 10, 20, 11})
	f.Add(uint8(100), uint8(8), []byte{20, 5, 10, 5, 0, 10, 15, 5, 25, 5})
	f.Add(uint8(50), uint8(4), []byte{0, 40, 40, 10})
	f.Add(uint8(64), uint8(64), []byte{5, 5, 5, 5, 0, 5})
	f.Add(uint8(255), uint8(1), []byte{1, 1, 0, 1, 2, 1, 3, 200})
	f.Fuzz(func(t *testing.T, limit, window uint8, ops []byte) {
		src := source(512)
		sink := &recordingSink{t: t}
		w := newReorderWindow(sink, 0, int64(limit), int(window), time.Hour)
		// Single-threaded, a write that must wait would wait for ever; a
		// cancelled context makes it fail at once instead.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		for i := 0; i+1 < len(ops); i += 2 {
			off, n := int(ops[i]), int(ops[i+1])
			if _, err := w.WriteAt(ctx, src[off:off+n], int64(off)); err != nil && !errors.Is(err, ErrTooLarge) &&
				!errors.Is(err, ErrNotSequential) && !errors.Is(err, context.Canceled) {
				t.Fatalf("unexpected error class: %v", err)
			}
			checkInvariants(t, w, sink)
			if got := sink.bytes(); !bytes.Equal(got, src[:len(got)]) {
				t.Fatalf("sink (%d bytes) is not a prefix of the source", len(got))
			}
			if len(sink.bytes()) > int(limit) {
				t.Fatalf("sink has %d bytes, past the limit %d", len(sink.bytes()), limit)
			}
		}
		n, err := w.Finish()
		if err != nil {
			return
		}
		if got := sink.bytes(); int64(len(got)) != n || !bytes.Equal(got, src[:n]) {
			t.Fatalf("Finish = %d, nil but the sink holds %d bytes that are not the source prefix", n, len(got))
		}
	})
}

// TestReorderWindowStallRace: a writer giving up after the stall must not
// read the window's state without the lock while others write. Only
// meaningful under -race.
func TestReorderWindowStallRace(t *testing.T) {
	t.Parallel()
	for range 300 {
		w := newReorderWindow(&recordingSink{t: t}, 0, 1<<30, 8, time.Microsecond)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = w.WriteAt(context.Background(), make([]byte, 16), 1<<20) // never fits: stalls
		}()
		for off := int64(0); ; off++ {
			if _, err := w.WriteAt(context.Background(), []byte{1}, off); err != nil {
				break // the stalled writer failed the window
			}
		}
		<-done
	}
}
