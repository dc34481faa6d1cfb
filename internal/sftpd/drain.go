package sftpd

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
)

// A stop drains the node: when Serve's context ends, the listener closes at
// once, so a new connection is refused rather than accepted and dropped,
// and Ping fails, so that a balancer stops sending; the connections open
// may run on for sftp.drain_timeout; those left are then closed, which
// interrupts their uploads (resumable, as for any connection lost).

// errDraining is what readiness reports while the node drains.
var errDraining = errors.New("draining: new connections are refused")

// errDrained ends the uploads still open when the drain times out.
var errDrained = errors.New("session closed: the node stopped and sftp.drain_timeout ran out")

// drainProgressEvery is how often the drain logs the sessions left.
const drainProgressEvery = 5 * time.Second

// Ping fails once the node drains: it takes no new connection. It is a
// readiness check.
func (s *Server) Ping(context.Context) error {
	if s.draining.Load() {
		return fmt.Errorf("%w (%d sessions left)", errDraining, s.open.Load())
	}
	return nil
}

// startDraining is called once Serve's context ends, before the listener
// closes.
func (s *Server) startDraining() {
	s.draining.Store(true)
	s.metrics.draining.Set(1)
}

// drain waits until the connections open have ended, for at most the drain
// timeout, and returns how many it had to wait for and how many were left.
func (s *Server) drain() (open, left int64) {
	open = s.open.Load()
	s.log.Info("draining: new connections are refused", "draining", true, "sessions_left", open, "drain_timeout", s.drainTimeout.String())
	ended := make(chan struct{})
	go func() {
		s.conns.Wait() // no connection is accepted any more
		close(ended)
	}()
	timeout := time.NewTimer(s.drainTimeout)
	defer timeout.Stop()
	progress := time.NewTicker(drainProgressEvery)
	defer progress.Stop()
	for {
		select {
		case <-ended:
			s.log.Info("drained: every session ended", "draining", true, "sessions_left", 0, "closed", 0)
			return open, 0
		case <-progress.C:
			s.log.Info("draining", "draining", true, "sessions_left", s.open.Load())
		case <-timeout.C:
			left = s.open.Load()
			s.log.Warn("drain timeout: closing the sessions left", "draining", true, "sessions_left", left, "closed", left)
			return open, left
		}
	}
}

// sessionsClosed reports whether the drain has closed the sessions.
func (s *Server) sessionsClosed() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

// closeSessions ends the connections the drain left; their uploads settle as
// interrupted. It returns once every connection has settled its bookkeeping.
func (s *Server) closeSessions(ctx context.Context, endSessions context.CancelFunc, open, left int64) {
	close(s.closing)
	endSessions()
	s.wg.Wait()
	s.metrics.drainClosed.Add(float64(left))
	if left > 0 {
		s.log.Info("sessions closed and settled", "draining", true, "sessions_left", 0, "closed", left)
	}
	s.audit(ctx, ledger.Event{Kind: "sftp.drain", Actor: "system",
		Detail: map[string]string{"node": s.node, "sessions": fmt.Sprint(open), "closed": fmt.Sprint(left)}})
}
