package gcfloor

import (
	"context"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercentFor(t *testing.T) {
	t.Parallel()
	const mib = 1 << 20
	for _, tc := range []struct {
		name               string
		live, roots, floor uint64
		want               int
	}{
		{"small heap: goal at the floor", 4 * mib, 0, 32 * mib, 700},
		{"small heap and its roots", 4 * mib, 3 * mib, 32 * mib, 400},
		{"tiny heap: the runtime's minimum, scaled, at the floor", 1 * mib, 0, 32 * mib, 800},
		{"half the floor: the default", 16 * mib, 0, 32 * mib, 100},
		{"with the roots, half the floor: the default", 12 * mib, 8 * mib, 32 * mib, 100},
		{"large heap: the default", 200 * mib, 1 * mib, 32 * mib, 100},
		{"nothing measured yet", 0, 0, 32 * mib, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := percentFor(tc.live, tc.roots, tc.floor); got != tc.want {
				t.Errorf("percentFor(%d, %d, %d) = %d, want %d", tc.live, tc.roots, tc.floor, got, tc.want)
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

	held := make([]byte, floor*3/4) // live: the floor must not lift it
	waitFor(t, "GOGC back at the default under a large live heap", func() bool {
		return read("/gc/gogc:percent") == defaultPercent
	})
	runtime.KeepAlive(held)

	waitFor(t, "heap goal lifted again", func() bool { return read("/gc/gogc:percent") > defaultPercent })
	cancel()
	waitFor(t, "GOGC back at the default once Hold ends", func() bool {
		return read("/gc/gogc:percent") == defaultPercent
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
