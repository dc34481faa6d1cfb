package sftpd

import (
	"context"
	"time"
)

// acceptBackoff spaces out retries of a failing accept as net/http does:
// 5 ms, doubling up to 1 s, reset by the next accepted connection.
type acceptBackoff struct{ delay time.Duration }

const (
	minAcceptBackoff = 5 * time.Millisecond
	maxAcceptBackoff = time.Second
)

// next advances the delay and returns it.
func (b *acceptBackoff) next() time.Duration {
	b.delay = min(max(2*b.delay, minAcceptBackoff), maxAcceptBackoff)
	return b.delay
}

// wait sleeps for the current delay, or until ctx ends.
func (b *acceptBackoff) wait(ctx context.Context) {
	t := time.NewTimer(b.delay)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (b *acceptBackoff) reset() { b.delay = 0 }
