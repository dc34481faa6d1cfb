package sftpd

import (
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
)

// fakeClock is a settable time source.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// newTestAdmission caps unauthenticated connections in total only, not per
// address or network.
func newTestAdmission(perIP, unauth int) *admission {
	return newLimitedAdmission(admissionLimits{perIP: perIP, unauth: unauth, unauthPerIP: math.MaxInt, unauthPerNet: math.MaxInt})
}

func newLimitedAdmission(l admissionLimits) *admission {
	return newAdmission(l, newBanBook(NewMemoryBans(), "node-1", ledger.BanRule{}))
}

func TestAdmissionCaps(t *testing.T) {
	t.Parallel()
	a := newTestAdmission(2, 3)
	one, two := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")

	for range 2 {
		if _, _, ok := a.admit(one); !ok {
			t.Fatal("refused below the per-address cap")
		}
	}
	if reason, _, ok := a.admit(one); ok || reason != reasonTooManyFromIP {
		t.Fatalf("third connection from one address: %q %v", reason, ok)
	}
	if _, _, ok := a.admit(two); !ok {
		t.Fatal("another address refused")
	}
	// Three connections are now waiting to authenticate: the total cap.
	three := netip.MustParseAddr("192.0.2.3")
	if reason, _, ok := a.admit(three); ok || reason != reasonTooManyUnauthed {
		t.Fatalf("fourth unauthenticated connection: %q %v", reason, ok)
	}
	a.authenticated(two)
	if _, _, ok := a.admit(three); !ok {
		t.Fatal("refused after a connection authenticated")
	}
	a.release(one)
	a.authenticated(one)
	if _, _, ok := a.admit(one); !ok {
		t.Fatal("refused after a connection from the address closed")
	}
}

func TestNetwork(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ ip, want string }{
		{"192.0.2.1", "192.0.2.0/24"},
		{"192.0.2.254", "192.0.2.0/24"},
		{"192.0.3.1", "192.0.3.0/24"},
		{"127.0.0.5", "127.0.0.0/24"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2::ffff", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{"::1", "::/64"},
	} {
		if got := network(netip.MustParseAddr(tc.ip)); got != netip.MustParsePrefix(tc.want) {
			t.Errorf("network(%s) = %s, want %s", tc.ip, got, tc.want)
		}
	}
}

// TestAdmissionShares: a handful of addresses, or one network, cannot take
// the whole unauthenticated pool; other networks still get in.
func TestAdmissionShares(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name            string
		first, neighbor string // neighbor: another address in first's network
		elsewhere       string
	}{
		{"IPv4 /24", "192.0.2.1", "192.0.2.200", "192.0.3.1"},
		{"IPv6 /64", "2001:db8:0:1::1", "2001:db8:0:1:ffff::9", "2001:db8:0:2::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := newLimitedAdmission(admissionLimits{perIP: 100, unauth: 8, unauthPerIP: 2, unauthPerNet: 3})
			first, neighbor, elsewhere := netip.MustParseAddr(tc.first), netip.MustParseAddr(tc.neighbor), netip.MustParseAddr(tc.elsewhere)
			for range 2 {
				if _, _, ok := a.admit(first); !ok {
					t.Fatal("refused below the per-address cap")
				}
			}
			if reason, _, ok := a.admit(first); ok || reason != reasonTooManyUnauthedIP {
				t.Fatalf("third unauthenticated connection from one address: %q %v", reason, ok)
			}
			if _, _, ok := a.admit(neighbor); !ok {
				t.Fatal("a neighbour refused below the network's share")
			}
			if reason, _, ok := a.admit(neighbor); ok || reason != reasonTooManyUnauthedNet {
				t.Fatalf("fourth unauthenticated connection from one network: %q %v", reason, ok)
			}
			if _, _, ok := a.admit(elsewhere); !ok {
				t.Fatal("another network refused")
			}
			a.authenticated(first)
			if _, _, ok := a.admit(neighbor); !ok {
				t.Fatal("the network's share was not given back")
			}
			if n, m := len(a.unauthedIP), len(a.unauthedNet); n != 3 || m != 2 {
				t.Fatalf("tracking %d addresses and %d networks, want 3 and 2", n, m)
			}
		})
	}
}

// TestAdmissionPressure: past half the pool, new connections are told to
// hurry; as the pool drains, they are not.
func TestAdmissionPressure(t *testing.T) {
	t.Parallel()
	a := newTestAdmission(100, 4)
	ip := netip.MustParseAddr("192.0.2.1")
	var got []bool
	for range 4 {
		_, pressured, ok := a.admit(ip)
		if !ok {
			t.Fatal("refused below the cap")
		}
		got = append(got, pressured)
	}
	if want := []bool{false, false, true, true}; !slices.Equal(got, want) {
		t.Fatalf("pressure as the pool fills: %v, want %v", got, want)
	}
	for range 3 {
		a.authenticated(ip)
	}
	if _, pressured, _ := a.admit(ip); pressured {
		t.Fatal("pressure with half the pool free")
	}
}

func TestHandshakeDeadline(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		timeout   time.Duration
		pressured bool
		want      time.Duration
	}{
		{30 * time.Second, false, 30 * time.Second},
		{30 * time.Second, true, 7500 * time.Millisecond},
		{2 * time.Minute, true, 30 * time.Second},
		{12 * time.Second, true, 5 * time.Second}, // never below a few seconds
		{2 * time.Second, true, 2 * time.Second},  // nor above the configured time
	} {
		if got := handshakeDeadline(tc.timeout, tc.pressured); got != tc.want {
			t.Errorf("handshakeDeadline(%s, %v) = %s, want %s", tc.timeout, tc.pressured, got, tc.want)
		}
	}
}

// TestDroppedBeforeLoginStrikes: which handshakes that end without a login
// count towards a ban.
func TestDroppedBeforeLoginStrikes(t *testing.T) {
	t.Parallel()
	timeout := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	for _, tc := range []struct {
		name             string
		err              error
		pressured, tried bool
		strike           bool
	}{
		{"held to the deadline", timeout, false, false, true},
		{"held to the shortened deadline", timeout, true, false, true},
		{"closed at once, quiet times", io.EOF, false, false, false},
		{"closed at once, under pressure", io.EOF, true, false, true},
		{"gave up after a refused key, under pressure", io.EOF, true, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, serverOptions{ban: config.Ban{Threshold: 2, Window: time.Minute, Duration: time.Minute}})
			ip := netip.MustParseAddr("192.0.2.9")
			for range 2 {
				ts.srv.droppedBeforeLogin(t.Context(), ip, "c1", testLogger(t), tc.err, time.Second, tc.pressured, tc.tried)
			}
			_, _, admitted := ts.srv.admission.admit(ip)
			if banned := !admitted; banned != tc.strike {
				t.Fatalf("banned after two: %v, want %v", banned, tc.strike)
			}
			if !tc.strike {
				return
			}
			// Audited by whichever flush writes the strikes: the server's
			// own, within 250 ms, or this one.
			ts.srv.flushStrikes(t.Context())
			eventually(t, "the ip.banned event", func() bool { return len(ts.events(t, "ip.banned")) > 0 })
			if evs := ts.events(t, "ip.banned"); len(evs) != 1 || evs[0].Detail["reason"] != banHeldSlots || evs[0].RemoteIP != ip.String() {
				t.Fatalf("ip.banned events: %+v", evs)
			}
		})
	}
}
