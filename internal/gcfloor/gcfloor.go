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

// runtimeMinimum is the runtime's least heap goal at GOGC=100; it scales
// with GOGC (defaultHeapMinimum in runtime/mgcpacer.go).
const runtimeMinimum = 4 << 20

// readings are the runtime metrics a tune reads, in heapOf's order.
var readings = []metrics.Sample{
	{Name: "/gc/heap/live:bytes"},
	{Name: "/gc/scan/stack:bytes"},
	{Name: "/gc/scan/globals:bytes"},
	{Name: "/memory/classes/total:bytes"},
	{Name: "/memory/classes/heap/released:bytes"},
	{Name: "/memory/classes/heap/free:bytes"},
	{Name: "/memory/classes/heap/objects:bytes"},
}

// heap is what the settings are made from.
type heap struct {
	live    uint64 // marked by the last collection
	roots   uint64 // stacks and globals, which the goal counts as well
	nonHeap uint64 // the runtime's memory besides the heap's spans
}

func heapOf(s []metrics.Sample) heap {
	v := func(i int) uint64 { return s[i].Value.Uint64() }
	return heap{live: v(0), roots: v(1) + v(2), nonHeap: v(3) - v(4) - v(5) - v(6)}
}

// Hold raises GOGC after each collection, so that the next one starts at
// about floor bytes of heap, for as long as the live heap is under half of
// floor; above that GOGC stays at the default, 100. An operator's GOGC in
// the environment wins: Hold then does nothing. An operator's memory limit
// (GOMEMLIMIT) still caps the goal. When ctx ends, the next collection
// puts both settings back and Hold stops.
func Hold(ctx context.Context, floor uint64) {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	operator := debug.SetMemoryLimit(-1)
	t := &tuner{ctx: ctx, floor: floor, operator: operator,
		now: setting{defaultPercent, operator}, sample: slices.Clone(readings)}
	t.arm()
}

type tuner struct {
	ctx      context.Context
	floor    uint64
	operator int64   // the memory limit Hold found (math.MaxInt64: none)
	now      setting // what it last set
	sample   []metrics.Sample
}

// setting is a GOGC and a memory limit.
type setting struct {
	percent int
	limit   int64
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
	next := setting{defaultPercent, t.operator}
	if t.ctx.Err() == nil {
		metrics.Read(t.sample)
		next = settingFor(heapOf(t.sample), t.floor, t.operator)
	}
	// The limit goes on before GOGC rises, and off after it falls.
	switch {
	case next == t.now:
	case next.percent > t.now.percent:
		debug.SetMemoryLimit(next.limit)
		debug.SetGCPercent(next.percent)
	default:
		debug.SetGCPercent(next.percent)
		debug.SetMemoryLimit(next.limit)
	}
	t.now = next
	if t.ctx.Err() == nil {
		t.arm()
	}
}

// settingFor puts the heap goal at floor while the live heap is small, and
// leaves the runtime's defaults (and the operator's limit) otherwise. The
// goal is live plus GOGC percent of live and roots, and at least
// runtimeMinimum scaled by GOGC. A GOGC set for a small heap would let a
// live heap that grew many times over within one cycle grow as many times
// again before the next tune; while it is raised, a memory limit of about
// twice the floor beyond the runtime's other memory bounds that cycle.
func settingFor(h heap, floor uint64, operator int64) setting {
	if h.live == 0 || 2*h.live+h.roots >= floor {
		return setting{defaultPercent, operator}
	}
	percent := min((floor-h.live)*100/(h.live+h.roots), floor*100/runtimeMinimum)
	return setting{int(percent), min(int64(h.nonHeap+2*floor), operator)}
}
