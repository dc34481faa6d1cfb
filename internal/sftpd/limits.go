package sftpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/airlock-gw/airlock/internal/ledger"
)

// ErrTooManyHandles reports an open refused because a handle limit is
// reached; closing handles, or waiting, makes room.
var ErrTooManyHandles = errors.New("too many open handles")

// The handle limits, as named in metrics, audit events and logs.
const (
	limitSession  = "session"
	limitSupplier = "supplier"
	limitNode     = "node"
)

// handleLimits counts the open handles (files and directories, of pkg/sftp
// and of the file lane) per session, per supplier across its sessions and
// per node, and refuses an open beyond any of them: every open file holds
// a descriptor, and every handle memory, which a client must not be able
// to take from the others.
type handleLimits struct {
	perSession, perSupplier, perNode int

	mu        sync.Mutex
	suppliers map[string]int // supplier → handles open; only suppliers with some
	node      int
}

func newHandleLimits(perSession, perSupplier, perNode int) *handleLimits {
	return &handleLimits{perSession: perSession, perSupplier: perSupplier, perNode: perNode, suppliers: make(map[string]int)}
}

// take counts one more handle of supplier's session (whose count is
// *session), or returns the limit it would exceed.
func (h *handleLimits) take(supplier string, session *int) (limit string, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case *session >= h.perSession:
		return limitSession, false
	case h.suppliers[supplier] >= h.perSupplier:
		return limitSupplier, false
	case h.node >= h.perNode:
		return limitNode, false
	}
	*session++
	h.suppliers[supplier]++
	h.node++
	return "", true
}

// give returns a handle taken.
func (h *handleLimits) give(supplier string, session *int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	*session--
	h.node--
	if h.suppliers[supplier]--; h.suppliers[supplier] <= 0 {
		delete(h.suppliers, supplier)
	}
}

// open reports the handles open on the node.
func (h *handleLimits) open() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.node
}

// takeHandle counts a handle the session is about to open; the returned
// func, safe to call more than once, gives it back. A refusal is logged,
// counted and audited once per connection and limit, so that a client
// hammering a limit cannot fill the log or the ledger.
func (s *session) takeHandle() (release func(), err error) {
	h := s.srv.handles
	limit, ok := h.take(s.supplier.Name, &s.handles)
	if !ok {
		s.handleLimitHit(limit)
		return nil, s.handleLimitError(limit)
	}
	s.srv.metrics.openHandles.Inc()
	var once sync.Once
	return func() {
		once.Do(func() {
			h.give(s.supplier.Name, &s.handles)
			s.srv.metrics.openHandles.Dec()
		})
	}, nil
}

// handleLimitError is what the client is told: its own limits by number,
// the node's without.
func (s *session) handleLimitError(limit string) error {
	h := s.srv.handles
	switch limit {
	case limitSession:
		return fmt.Errorf("%w: this session has %d open; close some first", ErrTooManyHandles, h.perSession)
	case limitSupplier:
		return fmt.Errorf("%w: your sessions have %d open; close some first", ErrTooManyHandles, h.perSupplier)
	}
	return fmt.Errorf("%w: the server is busy; try again later", ErrTooManyHandles)
}

func (s *session) handleLimitHit(limit string) {
	s.srv.metrics.limitRefusals.WithLabelValues("handles_per_" + limit).Inc()
	s.refusals.limitReached(s.ctx, "handles_per_"+limit, "open refused: handle limit reached",
		"open_in_session", s.openHandles(), "open_on_node", s.srv.handles.open())
}

func (s *session) openHandles() int {
	s.srv.handles.mu.Lock()
	defer s.srv.handles.mu.Unlock()
	return s.handles
}

// handleReader is a file open for reading that gives its handle back when
// closed.
type handleReader struct {
	io.ReaderAt
	release func()
}

func (r *handleReader) Close() error {
	defer r.release()
	if c, ok := r.ReaderAt.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// refuseChannel rejects a session channel beyond max_channels_per_connection:
// SFTP clients open one, and each costs goroutines and buffers. It is
// counted every time, logged and audited once per connection.
func (s *Server) refuseChannel(ctx context.Context, nch ssh.NewChannel, refused *refusals) {
	_ = nch.Reject(ssh.ResourceShortage, fmt.Sprintf("too many channels: at most %d sessions on one connection", s.maxChannels))
	s.metrics.limitRefusals.WithLabelValues("channels_per_connection").Inc()
	refused.limitReached(ctx, "channels_per_connection", "channel refused", "max", s.maxChannels)
}

// nodeHandleLimit is max_handles_per_node, or when unset what the process's
// descriptor limit leaves after a reserve for connections, the database,
// the stores and the HTTP server: a quarter of it, at least 128. It is at
// most 65,536 whatever the limit, for the memory handles hold.
func nodeHandleLimit(configured int) int {
	const most = 1 << 16
	if configured > 0 {
		return configured
	}
	n, ok := descriptorLimit()
	if !ok {
		return most
	}
	return min(max(n-max(n/4, 128), 16), most)
}

// closeStalled ends the connection of a session whose client has not taken
// a reply for the write stall timeout: while it does not read, the session
// reads no requests, but the SSH layer still holds what the client sent up
// to its window (2 MiB, several times that in memory when sent in small
// packets). Keepalives do not catch such a client: its SSH layer answers.
func (s *session) closeStalled(ctx context.Context, replies *replyPacker) {
	afterIdle(ctx, s.srv.writeStall, replies.stalledFor, func(stalled time.Duration) {
		s.log.Warn("closing connection: its client stopped reading answers", "stalled", stalled.Round(time.Second))
		s.srv.metrics.limitRefusals.WithLabelValues("write_stall_timeout").Inc()
		s.srv.audit(s.ctx, ledger.Event{
			Kind: "limit.reached", Actor: s.supplier.Name, RemoteIP: s.remoteIP, ConnID: s.connID,
			Detail: map[string]string{"limit": "write_stall_timeout", "stalled": stalled.Round(time.Second).String()},
		})
		s.closeConn()
		s.srv.reclaim.soon()
	})
}

// memoryReturn hands the memory of stalled connections just closed back to
// the system, once they have let go of it; the runtime would otherwise keep
// it until its next collection, minutes later when the process is idle.
// Closures close together (one attack) share one return, after the last.
type memoryReturn struct {
	mu    sync.Mutex
	timer *time.Timer
}

// returnMemoryAfter is how long after the last closure the memory is handed
// back: the time the connections take to let go of it.
const returnMemoryAfter = 5 * time.Second

func (m *memoryReturn) soon() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.timer == nil {
		m.timer = time.AfterFunc(returnMemoryAfter, debug.FreeOSMemory)
		return
	}
	m.timer.Reset(returnMemoryAfter)
}
