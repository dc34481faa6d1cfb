package sftpd

import (
	"cmp"
	"net/netip"
	"sync"
	"time"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
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
	perIP        int // open connections per address
	unauth       int // connections not yet authenticated, in total
	unauthPerIP  int // ... from one address
	unauthPerNet int // ... from one /24 (IPv4) or /64 (IPv6) network
}

// admission decides which connections get a handshake at all: it refuses
// banned addresses (see banBook: bans are shared by all nodes), and caps
// connections per address and connections not yet authenticated, in total,
// per address and per network, so that a handful of addresses cannot fill
// the pool. The caps are this node's: each node of a cluster applies them
// to the connections it holds.
type admission struct {
	admissionLimits
	bans *banBook

	mu          sync.Mutex
	open        map[netip.Addr]int
	unauthed    int
	unauthedIP  map[netip.Addr]int
	unauthedNet map[netip.Prefix]int
}

func newAdmission(l admissionLimits, bans *banBook) *admission {
	return &admission{
		admissionLimits: l,
		bans:            bans,
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
	if a.bans.isBanned(ip) {
		return reasonBanned, false, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
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

// admissionLimitsOf reads the limits from the sftp section; zero values
// (a Config not built by config.Load) take the defaults.
func admissionLimitsOf(sc config.SFTP) admissionLimits {
	unauth := cmp.Or(sc.MaxUnauthenticated, 64)
	return admissionLimits{
		perIP:        cmp.Or(sc.MaxConnectionsPerIP, 20),
		unauth:       unauth,
		unauthPerIP:  cmp.Or(sc.MaxUnauthenticatedPerIP, 10),
		unauthPerNet: cmp.Or(sc.MaxUnauthenticatedPerNetwork, max(1, unauth/4)),
	}
}

// banRuleOf reads sftp.ban, with the defaults as admissionLimitsOf.
func banRuleOf(sc config.SFTP) ledger.BanRule {
	return ledger.BanRule{
		Threshold: sc.Ban.Threshold,
		Window:    cmp.Or(sc.Ban.Window, 10*time.Minute),
		Duration:  cmp.Or(sc.Ban.Duration, 15*time.Minute),
	}
}
