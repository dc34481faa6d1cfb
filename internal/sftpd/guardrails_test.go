package sftpd

import (
	"net/netip"
	"testing"
	"time"
)

// fakeClock is a settable time source.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestAdmission(threshold, perIP, unauth int) (*admission, *fakeClock) {
	clock := &fakeClock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	a := newAdmission(threshold, time.Minute, 10*time.Minute, perIP, unauth)
	a.now = clock.now
	return a, clock
}

func TestAdmissionBansAfterThreshold(t *testing.T) {
	t.Parallel()
	a, clock := newTestAdmission(3, 10, 10)
	attacker, bystander := netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("198.51.100.1")

	for i := range 2 {
		if a.failed(attacker) {
			t.Fatalf("banned after %d failures, threshold 3", i+1)
		}
	}
	if !a.failed(attacker) {
		t.Fatal("not banned at the threshold")
	}
	if reason, ok := a.admit(attacker); ok || reason != reasonBanned {
		t.Fatalf("banned address admitted: %q %v", reason, ok)
	}
	if _, ok := a.admit(bystander); !ok {
		t.Fatal("another address suffers from the ban")
	}
	clock.advance(10 * time.Minute)
	if _, ok := a.admit(attacker); !ok {
		t.Fatal("still banned after the ban ended")
	}
}

func TestAdmissionForgetsOldFailures(t *testing.T) {
	t.Parallel()
	a, clock := newTestAdmission(3, 10, 10)
	ip := netip.MustParseAddr("203.0.113.9")
	a.failed(ip)
	a.failed(ip)
	clock.advance(2 * time.Minute) // outside the one-minute window
	if a.failed(ip) {
		t.Fatal("failures older than the window counted towards a ban")
	}
}

func TestAdmissionDisabledBans(t *testing.T) {
	t.Parallel()
	a, _ := newTestAdmission(0, 10, 10)
	ip := netip.MustParseAddr("203.0.113.9")
	for range 100 {
		if a.failed(ip) {
			t.Fatal("threshold 0 must never ban")
		}
	}
}

func TestAdmissionCaps(t *testing.T) {
	t.Parallel()
	a, _ := newTestAdmission(3, 2, 3)
	one, two := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")

	for range 2 {
		if _, ok := a.admit(one); !ok {
			t.Fatal("refused below the per-address cap")
		}
	}
	if reason, ok := a.admit(one); ok || reason != reasonTooManyFromIP {
		t.Fatalf("third connection from one address: %q %v", reason, ok)
	}
	if _, ok := a.admit(two); !ok {
		t.Fatal("another address refused")
	}
	// Three connections are now waiting to authenticate: the total cap.
	three := netip.MustParseAddr("192.0.2.3")
	if reason, ok := a.admit(three); ok || reason != reasonTooManyUnauthed {
		t.Fatalf("fourth unauthenticated connection: %q %v", reason, ok)
	}
	a.authenticated()
	if _, ok := a.admit(three); !ok {
		t.Fatal("refused after a connection authenticated")
	}
	a.release(one)
	a.authenticated()
	if _, ok := a.admit(one); !ok {
		t.Fatal("refused after a connection from the address closed")
	}
}

func TestAdmissionBoundsTrackedAddresses(t *testing.T) {
	t.Parallel()
	a, clock := newTestAdmission(5, 10, 10)
	base := netip.MustParseAddr("2001:db8::")
	ip := base
	for range maxTracked + 1 {
		a.failed(ip)
		ip = ip.Next()
	}
	clock.advance(2 * time.Minute)
	a.failed(base) // over the bound: stale entries are forgotten
	if n := len(a.failures); n != 1 {
		t.Fatalf("%d addresses tracked after pruning, want 1", n)
	}
}
