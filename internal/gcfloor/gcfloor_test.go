package gcfloor

import (
	"context"
	"math"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

func TestSettingFor(t *testing.T) {
	t.Parallel()
	const (
		mib  = 1 << 20
		none = math.MaxInt64
	)
	for _, tc := range []struct {
		name     string
		heap     heap
		operator int64
		want     setting
	}{
		{"small heap: goal at the floor", heap{4 * mib, 0, 10 * mib}, none, setting{700, 74 * mib}},
		{"small heap and its roots", heap{4 * mib, 3 * mib, 10 * mib}, none, setting{400, 74 * mib}},
		{"tiny heap: the runtime's minimum, scaled, at the floor", heap{1 * mib, 0, 10 * mib}, none, setting{800, 74 * mib}},
		{"an operator's lower limit stays", heap{4 * mib, 0, 10 * mib}, 50 * mib, setting{700, 50 * mib}},
		{"half the floor: the defaults", heap{16 * mib, 0, 10 * mib}, none, setting{100, none}},
		{"with the roots, half the floor: the defaults", heap{12 * mib, 8 * mib, 10 * mib}, none, setting{100, none}},
		{"large heap: the operator's limit", heap{200 * mib, 1 * mib, 10 * mib}, 512 * mib, setting{100, 512 * mib}},
		{"nothing measured yet", heap{}, none, setting{100, none}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := settingFor(tc.heap, 32*mib, tc.operator); got != tc.want {
				t.Errorf("settingFor(%+v, 32 MiB, %d) = %+v, want %+v", tc.heap, tc.operator, got, tc.want)
			}
		})
	}
}

// The tests below change the process's GC settings, so they do not run in
// parallel.

const floor = 32 << 20

// TestHoldLiftsASmallHeapsGoal checks the heap goal itself: at the floor
// while the live heap is small, the runtime's own again once the live heap
// reaches half the floor, and when Hold ends.
func TestHoldLiftsASmallHeapsGoal(t *testing.T) {
	runtime.GC()
	if g := read("/gc/heap/goal:bytes"); g >= floor/2 {
		t.Fatalf("the test's heap goal is %d before Hold; it needs a small heap", g)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	Hold(ctx, floor)
	waitFor(t, "heap goal at the floor", func() bool {
		g := read("/gc/heap/goal:bytes")
		return g > floor*9/10 && g < floor*11/10
	})
	if l := read("/gc/gomemlimit:bytes"); l == math.MaxInt64 || l < 2*floor {
		t.Errorf("memory limit %d while the goal is lifted, want one of at least %d", l, 2*floor)
	}

	held := make([]byte, floor*3/4) // live: the floor must not lift it
	waitFor(t, "the defaults back under a large live heap", func() bool {
		return read("/gc/gogc:percent") == defaultPercent && read("/gc/gomemlimit:bytes") == math.MaxInt64
	})
	runtime.KeepAlive(held)

	waitFor(t, "heap goal lifted again", func() bool { return read("/gc/gogc:percent") > defaultPercent })
	cancel()
	waitFor(t, "the defaults back once Hold ends", func() bool {
		return read("/gc/gogc:percent") == defaultPercent && read("/gc/gomemlimit:bytes") == math.MaxInt64
	})
}

func TestHoldLeavesAnOperatorsGOGC(t *testing.T) {
	t.Setenv("GOGC", "100")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	Hold(ctx, 32<<20)
	for range 3 {
		runtime.GC()
		time.Sleep(10 * time.Millisecond) // the cleanups run after the collection
	}
	if p := read("/gc/gogc:percent"); p != defaultPercent {
		t.Errorf("GOGC is %d with GOGC set in the environment, want it left at %d", p, defaultPercent)
	}
}

// waitFor collects garbage until ok holds: the tuner runs after each
// collection.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s: goal %d bytes, GOGC %d", what, read("/gc/heap/goal:bytes"), read("/gc/gogc:percent"))
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

func read(metric string) uint64 {
	s := []metrics.Sample{{Name: metric}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
