package sftpd

import (
	"context"
	"sync"
	"time"
)

// afterIdle calls fire once idleFor reports at least timeout, unless ctx
// ends first. It holds a timer, rearmed to the earliest moment the idle
// time could reach timeout, and no goroutine: a session has several such
// watches, and a server thousands of idle sessions.
func afterIdle(ctx context.Context, timeout time.Duration, idleFor func() time.Duration, fire func(idle time.Duration)) {
	w := &idleWatch{ctx: ctx, timeout: timeout, idleFor: idleFor, fire: fire}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = time.AfterFunc(timeout, w.check)
	context.AfterFunc(ctx, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.timer.Stop()
	})
}

type idleWatch struct {
	ctx     context.Context
	timeout time.Duration
	idleFor func() time.Duration
	fire    func(time.Duration)

	mu    sync.Mutex // orders the timer's creation and rearming with its stop
	timer *time.Timer
}

func (w *idleWatch) check() {
	w.mu.Lock()
	if w.ctx.Err() != nil {
		w.mu.Unlock()
		return
	}
	idle := w.idleFor()
	if idle < w.timeout {
		w.timer.Reset(w.timeout - idle)
		w.mu.Unlock()
		return
	}
	w.mu.Unlock()
	w.fire(idle)
}
