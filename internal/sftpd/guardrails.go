package sftpd

import (
	"net/netip"
	"sync"
	"time"
)

// Reasons a connection is dropped before the SSH handshake.
const (
	reasonBanned            = "banned"
	reasonTooManyFromIP     = "too-many-connections-from-ip"
	reasonTooManyUnauthed   = "too-many-unauthenticated"
	reasonHandshakeTimedOut = "handshake-timeout"
)

// admission decides which connections get a handshake at all: it bans
// addresses with too many failed logins, and caps connections per address
// and connections not yet authenticated. Bans are per node; a ban on one
// node does not follow the address to another.
type admission struct {
	threshold int           // failed logins within window that earn a ban; 0 disables
	window    time.Duration // how far back failures count
	banFor    time.Duration
	perIP     int // open connections per address
	unauthMax int // connections not yet authenticated, in total
	now       func() time.Time

	mu       sync.Mutex
	failures map[netip.Addr][]time.Time
	banned   map[netip.Addr]time.Time // address → end of ban
	open     map[netip.Addr]int
	unauthed int
}

func newAdmission(threshold int, window, banFor time.Duration, perIP, unauthMax int) *admission {
	return &admission{
		threshold: threshold, window: window, banFor: banFor, perIP: perIP, unauthMax: unauthMax,
		now:      time.Now,
		failures: make(map[netip.Addr][]time.Time),
		banned:   make(map[netip.Addr]time.Time),
		open:     make(map[netip.Addr]int),
	}
}

// admit reserves a slot for a new connection from ip, or says why not.
// An admitted connection must call authenticated (once) and release.
func (a *admission) admit(ip netip.Addr) (reason string, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if until, isBanned := a.banned[ip]; isBanned {
		if a.now().Before(until) {
			return reasonBanned, false
		}
		delete(a.banned, ip)
	}
	switch {
	case a.open[ip] >= a.perIP:
		return reasonTooManyFromIP, false
	case a.unauthed >= a.unauthMax:
		return reasonTooManyUnauthed, false
	}
	a.open[ip]++
	a.unauthed++
	return "", true
}

// authenticated moves a connection out of the unauthenticated pool; it is
// also called when the handshake fails, to give the slot back.
func (a *admission) authenticated() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.unauthed--
}

// release frees the connection's per-address slot.
func (a *admission) release(ip netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.open[ip]--; a.open[ip] <= 0 {
		delete(a.open, ip)
	}
}

// maxTracked bounds the addresses with recent failures kept in memory;
// beyond it, failures older than the window are forgotten at once.
const maxTracked = 10000

// failed counts a refused login from ip and reports whether it earned a ban.
func (a *admission) failed(ip netip.Addr) (banned bool) {
	if a.threshold <= 0 {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	if len(a.failures) > maxTracked {
		a.forgetStaleLocked(now)
	}
	recent := a.failures[ip][:0]
	for _, t := range a.failures[ip] {
		if now.Sub(t) < a.window {
			recent = append(recent, t)
		}
	}
	recent = append(recent, now)
	if len(recent) < a.threshold {
		a.failures[ip] = recent
		return false
	}
	delete(a.failures, ip)
	a.banned[ip] = now.Add(a.banFor)
	return true
}

func (a *admission) forgetStaleLocked(now time.Time) {
	for ip, times := range a.failures {
		if now.Sub(times[len(times)-1]) >= a.window {
			delete(a.failures, ip)
		}
	}
	for ip, until := range a.banned {
		if !now.Before(until) {
			delete(a.banned, ip)
		}
	}
}
