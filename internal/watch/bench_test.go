package watch

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/airlock-gw/airlock/internal/storage"
)

// sliceLister lists a fixed slice: a Lister that costs next to nothing, so
// that the benchmark measures the Poller.
type sliceLister []storage.Attributes

func (s sliceLister) Walk(_ context.Context, _ string, fn func(storage.Attributes) error) error {
	for _, a := range s {
		if err := fn(a); err != nil {
			return err
		}
	}
	return nil
}

func objects(n int) sliceLister {
	out := make(sliceLister, n)
	for i := range out {
		out[i] = storage.Attributes{
			Key: fmt.Sprintf("ds/%03d/object-%07d.csv", i%1000, i), Size: int64(i), ModTime: 1_700_000_000,
			ETag: fmt.Sprintf(`"%032x"`, i),
		}
	}
	return out
}

var discard = HandlerFunc(func(context.Context, Object) error { return nil })

// BenchmarkPoll is a poll of 100k objects: "steady" when all were handed
// over before (the common case), "new" when all are new.
func BenchmarkPoll(b *testing.B) {
	const n = 100_000
	objs := objects(n)
	b.Run("steady", func(b *testing.B) {
		p := NewPoller(objs, "", Options{}, discard, quiet())
		if err := p.Poll(b.Context()); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := p.Poll(b.Context()); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/object")
	})
	b.Run("new", func(b *testing.B) {
		b.ReportAllocs()
		var heap uint64
		for b.Loop() {
			b.StopTimer()
			p := NewPoller(objs, "", Options{}, discard, quiet())
			before := heapInUse()
			b.StartTimer()
			if err := p.Poll(b.Context()); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			heap = heapInUse() - before
			runtime.KeepAlive(p)
			b.StartTimer()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/object")
		b.ReportMetric(float64(heap)/n, "cursor-B/object")
	})
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
