package watch

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/airlock-gw/airlock/internal/storage"
)

// fakeStore is a Lister over a map; failAt > 0 makes a walk fail at that
// object.
type fakeStore struct {
	mu     sync.Mutex
	objs   map[string]storage.Attributes
	failAt int
}

func newFakeStore() *fakeStore { return &fakeStore{objs: make(map[string]storage.Attributes)} }

func (f *fakeStore) put(key string, size, mtime int64, etag string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.objs[key] = storage.Attributes{Key: key, Size: size, ModTime: mtime, ETag: etag}
}

func (f *fakeStore) remove(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.objs, key)
}

var errListing = errors.New("listing failed")

func (f *fakeStore) Walk(_ context.Context, prefix string, fn func(storage.Attributes) error) error {
	f.mu.Lock()
	keys := make([]string, 0, len(f.objs))
	for k := range f.objs {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	objs := make([]storage.Attributes, len(keys))
	for i, k := range keys {
		objs[i] = f.objs[k]
	}
	failAt := f.failAt
	f.mu.Unlock()
	for i, a := range objs {
		if i+1 == failAt {
			return errListing
		}
		if err := fn(a); err != nil {
			return err
		}
	}
	return nil
}

// recorder is a Handler that records what it is given, failing for the
// keys in fail as many times as fail says.
type recorder struct {
	mu    sync.Mutex
	found []string
	fail  map[string]int
}

func (r *recorder) Found(_ context.Context, o Object) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail[o.Key] > 0 {
		r.fail[o.Key]--
		return errors.New("the handler failed")
	}
	r.found = append(r.found, o.Key)
	return nil
}

// take returns what was found since the last take.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.found
	r.found = nil
	return out
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// step is a change to the store before a poll, and what the poll must
// hand over.
type step struct {
	do   func(f *fakeStore)
	want []string
}

func TestPollerReportsEachVersionOnce(t *testing.T) {
	t.Parallel()
	put := func(key string, size, mtime int64, etag string) func(*fakeStore) {
		return func(f *fakeStore) { f.put(key, size, mtime, etag) }
	}
	remove := func(key string) func(*fakeStore) { return func(f *fakeStore) { f.remove(key) } }
	none := func(*fakeStore) {}
	tests := []struct {
		name  string
		fail  map[string]int
		steps []step
	}{
		{"new objects once", nil, []step{
			{put("in/a", 1, 100, "e1"), []string{"in/a"}},
			{none, nil},
			{put("in/b", 2, 100, "e2"), []string{"in/b"}},
			{none, nil},
		}},
		{"outside the prefix never", nil, []step{
			{put("out/a", 1, 100, ""), nil},
			{put("inside", 1, 100, ""), nil},
		}},
		{"a new size, mtime or etag is a new version", nil, []step{
			{put("in/a", 1, 100, "e1"), []string{"in/a"}},
			{put("in/a", 2, 100, "e1"), []string{"in/a"}},
			{put("in/a", 2, 101, "e1"), []string{"in/a"}},
			{put("in/a", 2, 101, "e2"), []string{"in/a"}},
			{put("in/a", 2, 101, "e2"), nil},
		}},
		{"deleted is forgotten", nil, []step{
			{put("in/a", 1, 100, "e1"), []string{"in/a"}},
			{remove("in/a"), nil},
			{put("in/a", 1, 100, "e1"), []string{"in/a"}},
		}},
		{"a failed hand-over is offered again", map[string]int{"in/a": 2}, []step{
			{put("in/a", 1, 100, ""), nil},
			{none, nil},
			{none, []string{"in/a"}},
			{none, nil},
		}},
		{"a failed listing forgets nothing", nil, []step{
			{func(f *fakeStore) { f.put("in/a", 1, 100, ""); f.put("in/b", 1, 100, "") }, []string{"in/a", "in/b"}},
			{func(f *fakeStore) { f.failAt = 1 }, nil},
			{func(f *fakeStore) { f.failAt = 0 }, nil},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, r := newFakeStore(), &recorder{fail: tt.fail}
			p := NewPoller(f, "in/", Options{}, r, quiet())
			for i, s := range tt.steps {
				s.do(f)
				if err := p.Poll(t.Context()); err != nil && !errors.Is(err, errListing) {
					t.Fatalf("poll %d: %v", i, err)
				}
				if got := r.take(); !slices.Equal(got, s.want) {
					t.Fatalf("poll %d handed over %v, want %v", i, got, s.want)
				}
			}
		})
	}
}

// fakeClock is a Poller's clock that moves only when told.
type fakeClock struct{ now time.Duration }

func (c *fakeClock) read() time.Duration { return c.now }

func TestPollerSettles(t *testing.T) {
	t.Parallel()
	const every = time.Second
	tests := []struct {
		name   string
		opts   Options
		inLoc  bool          // the Lister writes in place (a local directory)
		first  time.Duration // how long after first sight the object is handed over
		reseen bool          // a change restarts the wait
	}{
		{"object store: on sight", Options{Every: every}, false, 0, false},
		{"local: 2×Every by default", Options{Every: every}, true, 2 * every, true},
		{"local: Settle set", Options{Every: every, Settle: 5 * every}, true, 5 * every, true},
		{"object store: Settle set", Options{Every: every, Settle: 3 * every}, false, 3 * every, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, r, clock := newFakeStore(), &recorder{}, &fakeClock{}
			var l Lister = f
			if tt.inLoc {
				l = localFake{f}
			}
			p := NewPoller(l, "", tt.opts, r, quiet())
			p.clock = clock.read
			size := int64(0)
			// Grows for 3 polls: never handed over meanwhile.
			for range 3 {
				size += 100
				f.put("f", size, int64(size), "")
				poll(t, p)
				if got := r.take(); tt.first > 0 && len(got) > 0 {
					t.Fatalf("handed over at %d bytes, while still growing", size)
				}
				clock.now += every
			}
			if tt.first == 0 {
				return // object stores: each version on sight, checked above
			}
			// The last change was seen a poll ago.
			for waited := every; ; waited += every {
				poll(t, p)
				got := r.take()
				if waited < tt.first && len(got) > 0 {
					t.Fatalf("handed over %s after it stopped growing, want %s", waited, tt.first)
				}
				if waited >= tt.first {
					if !slices.Equal(got, []string{"f"}) {
						t.Fatalf("%s after it stopped growing, handed over %v; want [f]", waited, got)
					}
					break
				}
				clock.now += every
			}
		})
	}
}

type localFake struct{ *fakeStore }

func (localFake) InPlaceWrites() bool { return true }

func poll(t *testing.T, p *Poller) {
	t.Helper()
	if err := p.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestPollerLocalFileGrowing grows a real file in a local store between
// polls: it is handed over only once it has held still for Settle, whole.
func TestPollerLocalFileGrowing(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	st, err := storage.Open(t.Context(), root)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const every = time.Second
	var sizes []int64
	h := HandlerFunc(func(_ context.Context, o Object) error {
		sizes = append(sizes, o.Size)
		return nil
	})
	p := NewPoller(st, "out/", Options{Every: every}, h, quiet())
	clock := &fakeClock{}
	p.clock = clock.read
	if err := os.MkdirAll(filepath.Join(root, "out/d"), 0o750); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(root, "out/d/big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for i := range 6 {
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
		poll(t, p)
		if len(sizes) > 0 {
			t.Fatalf("handed over %d bytes while the file grows (step %d)", sizes[0], i)
		}
		clock.now += every
	}
	// The last write was seen 1 s ago; Settle is 2×Every.
	poll(t, p)
	if len(sizes) > 0 {
		t.Fatalf("handed over %d bytes before the file held still for 2 s", sizes[0])
	}
	clock.now += every
	poll(t, p)
	if want := []int64{6 * 64 << 10}; !slices.Equal(sizes, want) {
		t.Fatalf("handed over sizes %v, want %v", sizes, want)
	}
}

func TestRunPollsOnTimerAndKick(t *testing.T) {
	t.Parallel()
	f, r := newFakeStore(), &recorder{}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	p := NewPoller(f, "", Options{Every: time.Hour, MinGap: time.Millisecond, Metrics: m}, r, quiet())
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	waitFor(t, "the first poll", func() bool { return testutil.ToFloat64(m.polls.WithLabelValues("timer")) == 1 })
	f.put("a", 1, 1, "")
	p.Kick()
	var found []string
	waitFor(t, "the kicked poll to hand a over", func() bool {
		found = append(found, r.take()...)
		return slices.Equal(found, []string{"a"})
	})
	f.mu.Lock()
	f.failAt = 1
	f.mu.Unlock()
	p.Kick()
	waitFor(t, "a failed poll counted", func() bool { return testutil.ToFloat64(m.pollErrors) == 1 })
	f.mu.Lock()
	f.failAt = 0
	f.mu.Unlock()
	f.put("b", 1, 1, "")
	p.Kick()
	waitFor(t, "b handed over after the failed poll", func() bool {
		found = append(found, r.take()...)
		return slices.Equal(found, []string{"a", "b"})
	})
	if got := testutil.ToFloat64(m.handedOver.WithLabelValues("ok")); got != 2 {
		t.Errorf("objects found = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.watched); got != 2 {
		t.Errorf("objects watched = %v, want 2", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after its context ended = %v, want nil", err)
	}
}

func TestKickCoalesces(t *testing.T) {
	t.Parallel()
	calls := 0
	f := listerFunc(func() { calls++ })
	p := NewPoller(f, "", Options{Every: time.Hour, MinGap: 50 * time.Millisecond}, &recorder{}, quiet())
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			p.Kick()
			time.Sleep(time.Millisecond)
		}
	}()
	_ = p.Run(ctx)
	// One poll at start, then at most one per MinGap however many kicks.
	if calls < 2 || calls > 1+2000/50 {
		t.Errorf("%d polls in 2 s of kicks every ms with MinGap 50 ms, want 2 to 41", calls)
	}
}

type listerFunc func()

func (f listerFunc) Walk(context.Context, string, func(storage.Attributes) error) error {
	f()
	return nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
