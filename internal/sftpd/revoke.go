package sftpd

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
)

// Reasons a live session is revoked.
const (
	revokedSupplierRemoved = "supplier-removed"
	revokedIPNotAllowed    = "ip-not-allowed"
	revokedKey             = "key-revoked"
	revokedKeyExpired      = "key-expired"
)

// revalidateInterval is how often live sessions are checked against the
// current supplier set even without a reload: a key can expire mid-session.
const revalidateInterval = 10 * time.Second

// liveConn is an authenticated connection, with what its login was
// authorized by.
type liveConn struct {
	supplier    string
	key         ssh.PublicKey // the client logged in with
	fingerprint string        // of key
	ip          netip.Addr
	log         *slog.Logger
	close       func() error
	revoked     atomic.Pointer[string] // the reason, once revoked
}

// revokedFor is why the connection was revoked, "" while it was not.
func (c *liveConn) revokedFor() string {
	if r := c.revoked.Load(); r != nil {
		return *r
	}
	return ""
}

// liveConns is the server's registry of authenticated connections.
type liveConns struct {
	mu    sync.Mutex
	conns map[string]*liveConn // by conn id
}

func (l *liveConns) add(connID string, c *liveConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns == nil {
		l.conns = make(map[string]*liveConn)
	}
	l.conns[connID] = c
}

func (l *liveConns) remove(connID string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.conns, connID)
}

func (l *liveConns) snapshot() map[string]*liveConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.conns)
}

// revokedBecause names, for each login rule, the revocation of a live
// connection that no longer meets it.
var revokedBecause = map[string]string{
	reasonUnknownUser:  revokedSupplierRemoved,
	reasonIPNotAllowed: revokedIPNotAllowed,
	reasonKeyRejected:  revokedKey,
	reasonKeyExpired:   revokedKeyExpired,
}

// revocation says why c's login would no longer be accepted by set at now,
// or ok when it still would: the login's own rules, applied again.
func revocation(c *liveConn, set *config.Suppliers, now time.Time) (reason string, ok bool) {
	_, err := authorize(set, c.supplier, c.ip, c.key, now)
	var ae *authError
	if !errors.As(err, &ae) {
		return "", true
	}
	return revokedBecause[ae.reason], false
}

// login registers an authenticated connection and checks it against the
// current supplier set: registering first means a reload either sees the
// connection or is seen by this check, so no login slips between the two.
// It returns the supplier, or false when the connection was revoked.
func (s *Server) login(ctx context.Context, connID string, c *liveConn) (*config.Supplier, bool) {
	s.live.add(connID, c)
	set := s.suppliers()
	if reason, ok := revocation(c, set, s.now()); !ok {
		s.revoke(ctx, connID, c, reason)
		return nil, false
	}
	sup, _ := set.Lookup(c.supplier)
	return sup, true
}

// Revalidate checks every live connection against set, the supplier set
// now in effect, and closes those whose supplier, address or key is no
// longer allowed: a revoked key must not keep a session it opened. Uploads
// in flight on them fail, as when a connection is lost. It returns the
// number of connections it closed.
func (s *Server) Revalidate(ctx context.Context, set *config.Suppliers) int {
	closed := 0
	now := s.now()
	for id, c := range s.live.snapshot() {
		if reason, ok := revocation(c, set, now); !ok && s.revoke(ctx, id, c, reason) {
			closed++
		}
	}
	return closed
}

// revoke closes c for reason, logged and audited, unless it was revoked
// already, and reports whether it did.
func (s *Server) revoke(ctx context.Context, connID string, c *liveConn, reason string) bool {
	if !c.revoked.CompareAndSwap(nil, &reason) {
		return false
	}
	c.log.Warn("session revoked; closing", "reason", reason, "key", c.fingerprint)
	s.metrics.revoked.WithLabelValues(reason).Inc()
	s.audit(ctx, ledger.Event{Kind: "session.revoked", Actor: "system", RemoteIP: c.ip.String(), ConnID: connID,
		Detail: map[string]string{"supplier": c.supplier, "reason": reason, "key": c.fingerprint}})
	_ = c.close()
	return true
}

// revalidateEvery runs Revalidate against the current set every interval
// until ctx ends.
func (s *Server) revalidateEvery(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Revalidate(ctx, s.suppliers())
		}
	}
}
