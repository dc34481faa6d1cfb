package sftpd

import (
	"context"
	"sync"
	"time"
)

// The watches of a session and its connection (idle, stalled, keepalive)
// are timers, not goroutines: a server holds thousands of idle sessions,
// and a goroutine's stack costs each of them a few KiB.

// every calls fn every interval until fn returns false or ctx ends.
func every(ctx context.Context, interval time.Duration, fn func() bool) {
	rearm(ctx, interval, func() (time.Duration, bool) { return interval, fn() })
}

// afterIdle calls fire once idleFor reports at least timeout, unless ctx
// ends first, checking again at the earliest moment the idle time could
// reach it.
func afterIdle(ctx context.Context, timeout time.Duration, idleFor func() time.Duration, fire func(idle time.Duration)) {
	rearm(ctx, timeout, func() (time.Duration, bool) {
		idle := idleFor()
		if idle < timeout {
			return timeout - idle, true
		}
		fire(idle)
		return 0, false
	})
}

// rearm calls fn after first, then again after each wait fn returns, until
// fn returns false or ctx ends.
func rearm(ctx context.Context, first time.Duration, fn func() (next time.Duration, again bool)) {
	var mu sync.Mutex // orders the timer's creation and rearming with its stop
	var t *time.Timer
	mu.Lock()
	defer mu.Unlock()
	t = time.AfterFunc(first, func() {
		if ctx.Err() != nil {
			return
		}
		next, again := fn()
		mu.Lock()
		defer mu.Unlock()
		if again && ctx.Err() == nil {
			t.Reset(next)
		}
	})
	context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		t.Stop()
	})
}
