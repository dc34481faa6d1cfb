package sftpd

import (
	"context"
	"io"
	"sync"
	"testing"
	"time"
)

// BenchmarkReorderWindow measures the reorder window alone (the sink
// discards), with the write pattern of the OpenSSH sftp client: 32 KiB
// requests, up to 64 in flight, behind the default 4 MiB window.
//
//	go test -run '^$' -bench ReorderWindow ./internal/sftpd/
func BenchmarkReorderWindow(b *testing.B) {
	const (
		size   = 16 << 20
		chunk  = 32 << 10
		group  = 64 // requests in flight, shuffled together
		window = 4 << 20
	)
	src := make([]byte, size)
	for i := range src {
		src[i] = byte(i * 7)
	}
	for _, bc := range []struct {
		name    string
		group   int // 1: in order
		writers int
	}{
		{"in-order", 1, 1},
		{"shuffled", group, 1},
		{"shuffled-4-writers", group, 4},
	} {
		b.Run(bc.name, func(b *testing.B) {
			order := chunks(size, chunk, bc.group, 1)
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				w := newReorderWindow(io.Discard, 0, size, window, 30*time.Second)
				if bc.writers == 1 {
					for _, c := range order {
						if _, err := w.WriteAt(context.Background(), src[c[0]:c[0]+c[1]], int64(c[0])); err != nil {
							b.Fatal(err)
						}
					}
				} else {
					benchWriters(b, w, src, order, bc.writers)
				}
				if n, err := w.Finish(); err != nil || n != size {
					b.Fatalf("Finish = %d, %v", n, err)
				}
			}
		})
	}
}

// benchWriters writes order from several goroutines, as pkg/sftp's
// request workers do.
func benchWriters(b *testing.B, w *reorderWindow, src []byte, order [][2]int, writers int) {
	work := make(chan [2]int, len(order))
	for _, c := range order {
		work <- c
	}
	close(work)
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for c := range work {
				if _, err := w.WriteAt(context.Background(), src[c[0]:c[0]+c[1]], int64(c[0])); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
