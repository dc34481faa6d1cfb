package sftpd

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/time/rate"

	"github.com/airlock-gw/airlock/internal/clip"
	"github.com/airlock-gw/airlock/internal/ledger"
)

// Refusals one connection may have recorded one by one: a burst no real
// client reaches, then one a second. A client that sends refused requests
// in a loop would otherwise make airlock write a log line and an audit
// event for each, many times the bytes it sent.
const (
	refusalBurst = 100
	refusalRate  = rate.Limit(1)
)

// refusals records one connection's refused requests in the log and the
// audit trail, within the connection's budget; those over it are counted,
// and the count is recorded once when the connection ends.
type refusals struct {
	srv      *Server
	log      *slog.Logger
	actor    string
	remoteIP string
	connID   string
	limit    *rate.Limiter

	mu         sync.Mutex
	suppressed map[string]int  // reason → refusals not recorded
	reached    map[string]bool // resource limits met, each recorded once
}

func newRefusals(srv *Server, log *slog.Logger, actor, remoteIP, connID string) *refusals {
	return &refusals{srv: srv, log: log, actor: actor, remoteIP: remoteIP, connID: connID,
		limit: rate.NewLimiter(refusalRate, refusalBurst), suppressed: make(map[string]int), reached: make(map[string]bool)}
}

// limitReached records that the connection met a resource limit: the first
// time, a log line msg with args and a "limit.reached" event; after that,
// a debug line only, for the callers count every refusal in the metrics.
func (r *refusals) limitReached(ctx context.Context, limit, msg string, args ...any) {
	r.mu.Lock()
	first := !r.reached[limit]
	r.reached[limit] = true
	r.mu.Unlock()
	if !first {
		r.log.Debug(msg, "limit", limit)
		return
	}
	r.log.Warn(msg, append([]any{"limit", limit}, args...)...)
	r.srv.audit(ctx, ledger.Event{Kind: "limit.reached", Actor: r.actor, RemoteIP: r.remoteIP, ConnID: r.connID,
		Detail: map[string]string{"limit": limit, "note": "further refusals on this connection are counted, not audited"}})
}

// record counts a refusal in the metrics and, within the budget, logs it
// with detail's fields and appends a "request.refused" event. detail must
// hold "reason".
func (r *refusals) record(ctx context.Context, msg string, detail map[string]string) {
	reason := detail["reason"]
	r.srv.metrics.refused.WithLabelValues(reason).Inc()
	if !r.limit.Allow() {
		r.mu.Lock()
		r.suppressed[reason]++
		r.mu.Unlock()
		return
	}
	args := make([]any, 0, 2*len(detail))
	for k, v := range detail {
		args = append(args, k, v)
	}
	r.log.Warn(msg, args...)
	r.srv.audit(ctx, ledger.Event{Kind: "request.refused", Actor: r.actor, RemoteIP: r.remoteIP, ConnID: r.connID, Detail: detail})
}

// sshRequest records a refused SSH request (exec, shell, pty, forwarding…)
// or channel; kind says which.
func (r *refusals) sshRequest(ctx context.Context, kind, reqType string) {
	r.record(ctx, kind+" refused", map[string]string{"op": kind, "type": clip.String(reqType, clip.Name), "reason": "not-sftp"})
}

// close records how many refusals were over the budget, if any.
func (r *refusals) close(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for reason, n := range r.suppressed {
		r.log.Warn("refusals not recorded one by one", "reason", reason, "count", n)
		r.srv.audit(ctx, ledger.Event{Kind: "request.refused.suppressed", Actor: r.actor, RemoteIP: r.remoteIP, ConnID: r.connID,
			Detail: map[string]string{"reason": reason, "count": fmt.Sprint(n)}})
	}
	clear(r.suppressed)
}

// serveGlobalRequests answers the connection's global requests: keepalives
// as OpenSSH does (refused, silently: the reply is the point), and
// anything else, such as port forwarding, refused and recorded.
func (r *refusals) serveGlobalRequests(ctx context.Context, reqs <-chan *ssh.Request) {
	for req := range reqs {
		if req.WantReply {
			_ = req.Reply(false, nil)
		}
		if req.Type != "keepalive@openssh.com" {
			r.sshRequest(ctx, "global-request", req.Type)
		}
	}
}
