package sftpd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
)

// ErrBusy reports an upload refused because the server's upload memory is
// taken and did not free up in time; the client may try again.
var ErrBusy = errors.New("server busy")

// memoryBudget shares the memory for upload buffers (limits.upload_memory)
// fairly: every upload reserves perUpload bytes, first from its supplier's
// share (at most half the budget), then from the whole budget. A supplier
// that opens uploads beyond its share waits on its own share, so it cannot
// queue ahead of other suppliers for the rest.
type memoryBudget struct {
	total     *semaphore.Weighted
	perUpload int64
	share     int64
	wait      time.Duration // longest wait before an upload is refused as busy

	mu        sync.Mutex
	suppliers map[string]*supplierShare
}

type supplierShare struct {
	sem   *semaphore.Weighted
	users int // reservations holding or waiting on sem
}

func newMemoryBudget(budget, perUpload int64, wait time.Duration) *memoryBudget {
	perUpload = min(perUpload, budget)
	return &memoryBudget{
		total:     semaphore.NewWeighted(budget),
		perUpload: perUpload,
		share:     max(budget/2, perUpload),
		wait:      wait,
		suppliers: make(map[string]*supplierShare),
	}
}

// reserve takes one upload's memory for supplier, waiting up to the budget's
// wait time; onWait is called when it starts to wait. With overdraft, when
// the memory is not free at once, the upload proceeds without it rather than
// wait (see session.reserveMemory).
func (b *memoryBudget) reserve(ctx context.Context, supplier string, overdraft bool, onWait func()) (release func(), err error) {
	share := b.shareOf(supplier)
	n := b.perUpload
	if share.sem.TryAcquire(n) {
		if b.total.TryAcquire(n) {
			return b.releaser(supplier, share, n), nil
		}
		share.sem.Release(n)
	}
	if overdraft {
		b.forget(supplier, share)
		return func() {}, nil
	}
	onWait()

	ctx, cancel := context.WithTimeout(ctx, b.wait)
	defer cancel()
	if err := share.sem.Acquire(ctx, n); err != nil {
		b.forget(supplier, share)
		return nil, b.busy(ctx, err, "this supplier's uploads in progress hold its share")
	}
	if err := b.total.Acquire(ctx, n); err != nil {
		share.sem.Release(n)
		b.forget(supplier, share)
		return nil, b.busy(ctx, err, "uploads in progress hold all of it")
	}
	return b.releaser(supplier, share, n), nil
}

func (b *memoryBudget) busy(ctx context.Context, err error, why string) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: the upload memory budget is in use (%s) and did not free up within %s; try again later", ErrBusy, why, b.wait)
	}
	return fmt.Errorf("wait for upload memory: %w", err)
}

func (b *memoryBudget) releaser(supplier string, share *supplierShare, n int64) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			b.total.Release(n)
			share.sem.Release(n)
			b.forget(supplier, share)
		})
	}
}

// shareOf returns supplier's share, counting the caller as a user of it.
func (b *memoryBudget) shareOf(supplier string) *supplierShare {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.suppliers[supplier]
	if !ok {
		s = &supplierShare{sem: semaphore.NewWeighted(b.share)}
		b.suppliers[supplier] = s
	}
	s.users++
	return s
}

// forget drops one user of the share, and the share once nobody uses it,
// so that the map holds only suppliers with uploads in progress.
func (b *memoryBudget) forget(supplier string, share *supplierShare) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if share.users--; share.users == 0 {
		delete(b.suppliers, supplier)
	}
}
