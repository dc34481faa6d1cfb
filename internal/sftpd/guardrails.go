package sftpd

import (
	"cmp"
	"net/netip"
	"sync"
	"time"

	"github.com/airlock-gw/airlock/internal/config"
)

// Reasons a connection is dropped before the SSH handshake.
const (
	reasonBanned             = "banned"
	reasonTooManyFromIP      = "too-many-connections-from-ip"
	reasonTooManyUnauthed    = "too-many-unauthenticated"
	reasonTooManyUnauthedIP  = "too-many-unauthenticated-from-ip"
	reasonTooManyUnauthedNet = "too-many-unauthenticated-from-network"
	reasonHandshakeTimedOut  = "handshake-timeout"
	// Counted with the refusals, though the client left on its own.
	reasonClosedUnderPressure = "closed-before-login-under-pressure"
)

// Under pressure (the unauthenticated pool more than half full), a new
// connection has a quarter of handshake_timeout to log in, but at least
// minPressuredHandshake.
const (
	pressuredHandshakeFraction = 4
	minPressuredHandshake      = 5 * time.Second
)

// admissionLimits are the knobs of an admission (see config.SFTP).
type admissionLimits struct {
	banThreshold int           // strikes within banWindow that earn a ban; 0 disables
	banWindow    time.Duration // how far back strikes count
	banFor       time.Duration
	perIP        int // open connections per address
	unauth       int // connections not yet authenticated, in total
	unauthPerIP  int // ... from one address
	unauthPerNet int // ... from one /24 (IPv4) or /64 (IPv6) network
}

// admission decides which connections get a handshake at all: it bans
// addresses that earn too many strikes (failed logins, slots held without
// logging in), and caps connections per address and connections not yet
// authenticated, in total, per address and per network, so that a handful
// of addresses cannot fill the pool. Bans are per node; a ban on one node
// does not follow the address to another.
type admission struct {
	admissionLimits
	now func() time.Time

	mu          sync.Mutex
	failures    map[netip.Addr][]time.Time
	banned      map[netip.Addr]time.Time // address → end of ban
	open        map[netip.Addr]int
	unauthed    int
	unauthedIP  map[netip.Addr]int
	unauthedNet map[netip.Prefix]int
}

func newAdmission(l admissionLimits) *admission {
	return &admission{
		admissionLimits: l,
		now:             time.Now,
		failures:        make(map[netip.Addr][]time.Time),
		banned:          make(map[netip.Addr]time.Time),
		open:            make(map[netip.Addr]int),
		unauthedIP:      make(map[netip.Addr]int),
		unauthedNet:     make(map[netip.Prefix]int),
	}
}

// network is the block an address shares its unauthenticated quota with:
// what one customer of a provider usually holds.
func network(ip netip.Addr) netip.Prefix {
	bits := 64
	if ip.Is4() {
		bits = 24
	}
	p, _ := ip.Prefix(bits)
	return p
}

// admit reserves a slot for a new connection from ip, or says why not.
// pressured reports that the unauthenticated pool is more than half full:
// the connection then gets a shorter handshake deadline. An admitted
// connection must call authenticated (once) and release.
func (a *admission) admit(ip netip.Addr) (reason string, pressured, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if until, isBanned := a.banned[ip]; isBanned {
		if a.now().Before(until) {
			return reasonBanned, false, false
		}
		delete(a.banned, ip)
	}
	netw := network(ip)
	switch {
	case a.open[ip] >= a.perIP:
		return reasonTooManyFromIP, false, false
	case a.unauthedIP[ip] >= a.unauthPerIP:
		return reasonTooManyUnauthedIP, false, false
	case a.unauthedNet[netw] >= a.unauthPerNet:
		return reasonTooManyUnauthedNet, false, false
	case a.unauthed >= a.unauth:
		return reasonTooManyUnauthed, false, false
	}
	a.open[ip]++
	a.unauthed++
	a.unauthedIP[ip]++
	a.unauthedNet[netw]++
	return "", 2*a.unauthed > a.unauth, true
}

// authenticated moves a connection from ip out of the unauthenticated
// pool; it is also called when the handshake fails, to give the slot back.
func (a *admission) authenticated(ip netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.unauthed--
	if a.unauthedIP[ip]--; a.unauthedIP[ip] <= 0 {
		delete(a.unauthedIP, ip)
	}
	netw := network(ip)
	if a.unauthedNet[netw]--; a.unauthedNet[netw] <= 0 {
		delete(a.unauthedNet, netw)
	}
}

// release frees the connection's per-address slot.
func (a *admission) release(ip netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.open[ip]--; a.open[ip] <= 0 {
		delete(a.open, ip)
	}
}

// handshakeDeadline is how long a connection admitted now has to log in:
// under pressure a quarter of the configured time, but never less than a
// few seconds (a real client needs about one), so that silent holders are
// cycled out fast.
func handshakeDeadline(timeout time.Duration, pressured bool) time.Duration {
	if !pressured {
		return timeout
	}
	return min(timeout, max(timeout/pressuredHandshakeFraction, minPressuredHandshake))
}

// maxTracked bounds the addresses with recent strikes kept in memory;
// beyond it, strikes older than the window are forgotten at once.
const maxTracked = 10000

// failed counts a strike against ip (a refused login, or a slot held
// without logging in) and reports whether it earned a ban.
func (a *admission) failed(ip netip.Addr) (banned bool) {
	if a.banThreshold <= 0 {
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
		if now.Sub(t) < a.banWindow {
			recent = append(recent, t)
		}
	}
	recent = append(recent, now)
	if len(recent) < a.banThreshold {
		a.failures[ip] = recent
		return false
	}
	delete(a.failures, ip)
	a.banned[ip] = now.Add(a.banFor)
	return true
}

func (a *admission) forgetStaleLocked(now time.Time) {
	for ip, times := range a.failures {
		if now.Sub(times[len(times)-1]) >= a.banWindow {
			delete(a.failures, ip)
		}
	}
	for ip, until := range a.banned {
		if !now.Before(until) {
			delete(a.banned, ip)
		}
	}
}

// admissionLimitsOf reads the limits from the sftp section; zero values
// (a Config not built by config.Load) take the defaults.
func admissionLimitsOf(sc config.SFTP) admissionLimits {
	unauth := cmp.Or(sc.MaxUnauthenticated, 64)
	return admissionLimits{
		banThreshold: sc.Ban.Threshold,
		banWindow:    cmp.Or(sc.Ban.Window, 10*time.Minute),
		banFor:       cmp.Or(sc.Ban.Duration, 15*time.Minute),
		perIP:        cmp.Or(sc.MaxConnectionsPerIP, 20),
		unauth:       unauth,
		unauthPerIP:  cmp.Or(sc.MaxUnauthenticatedPerIP, 10),
		unauthPerNet: cmp.Or(sc.MaxUnauthenticatedPerNetwork, max(1, unauth/4)),
	}
}
