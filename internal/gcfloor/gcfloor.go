// Package gcfloor keeps the garbage collector from running every few
// megabytes while the live heap is small.
//
// With the default GOGC of 100 the heap goal is twice the live heap, and an
// idle node's live heap is 3–5 MB. An upload allocates about 1.3 GB per GiB
// (x/crypto/ssh copies every packet it decrypts), so it ran about 235
// collections per GiB, each marking the whole heap and waking a worker on
// the other core: a tenth of the session's CPU. A fixed higher GOGC would
// raise the goal of a large heap too (GOGC=400 took the S3 landing's peak
// RSS past its 128 MiB target); the floor only lifts a small one.
package gcfloor

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
)

// defaultPercent is the runtime's GOGC when the environment sets none.
const defaultPercent = 100

// What the heap goal is made of: GOGC percent of the live heap and the
// roots (stacks, globals) over the live heap.
var goalParts = []metrics.Sample{
	{Name: "/gc/heap/live:bytes"},
	{Name: "/gc/scan/stack:bytes"},
	{Name: "/gc/scan/globals:bytes"},
}

// Hold raises GOGC after each collection, so that the next one starts at
// about floor bytes of heap, for as long as the live heap is under half of
// floor; above that GOGC stays at the default, 100. An operator's GOGC in
// the environment wins: Hold then does nothing. A memory limit
// (GOMEMLIMIT) still caps the goal. When ctx ends, the next collection
// puts GOGC back to 100 and Hold stops.
func Hold(ctx context.Context, floor uint64) {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	t := &tuner{ctx: ctx, floor: floor, percent: defaultPercent, sample: slices.Clone(goalParts)}
	t.arm()
}

type tuner struct {
	ctx     context.Context
	floor   uint64
	percent int // what it last set
	sample  []metrics.Sample
}

// sentinel is garbage from birth: its cleanup runs after the next
// collection. The pointer keeps it out of the tiny allocator, whose
// objects may never be cleaned up.
type sentinel struct{ _ *byte }

func (t *tuner) arm() {
	runtime.AddCleanup(new(sentinel), (*tuner).tune, t)
}

// tune runs after each collection, on the runtime's cleanup goroutine.
func (t *tuner) tune() {
	percent := defaultPercent
	if t.ctx.Err() == nil {
		metrics.Read(t.sample)
		live, roots := t.sample[0].Value.Uint64(), t.sample[1].Value.Uint64()+t.sample[2].Value.Uint64()
		percent = percentFor(live, roots, t.floor)
	}
	if percent != t.percent {
		debug.SetGCPercent(percent)
		t.percent = percent
	}
	if t.ctx.Err() == nil {
		t.arm()
	}
}

// runtimeMinimum is the runtime's least heap goal at GOGC=100; it scales
// with GOGC (defaultHeapMinimum in runtime/mgcpacer.go).
const runtimeMinimum = 4 << 20

// percentFor is the GOGC that puts the heap goal at floor, and never below
// the default. The goal is live plus GOGC percent of live and roots, and
// at least runtimeMinimum scaled by GOGC.
func percentFor(live, roots, floor uint64) int {
	if live == 0 || 2*live+roots >= floor {
		return defaultPercent
	}
	return int(min((floor-live)*100/(live+roots), floor*100/runtimeMinimum))
}
