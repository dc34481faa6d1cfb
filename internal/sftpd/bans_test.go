package sftpd

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
)

var testBanRule = ledger.BanRule{Threshold: 3, Window: time.Minute, Duration: 10 * time.Minute}

// newTestBook is node's book on store, on a fake clock.
func newTestBook(store BanStore, node string, clock *fakeClock) *banBook {
	b := newBanBook(store, node, testBanRule)
	b.now = clock.now
	return b
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)} }

// countingStore counts writes, and fails them while failing is set.
type countingStore struct {
	BanStore
	writes  int
	failing bool
}

func (c *countingStore) Strike(ctx context.Context, node string, at time.Time, rule ledger.BanRule, s []ledger.Strikes) ([]ledger.Ban, error) {
	c.writes++
	if c.failing {
		return nil, errors.New("database down")
	}
	return c.BanStore.Strike(ctx, node, at, rule, s)
}

func mustFlush(t *testing.T, b *banBook) []madeBan {
	t.Helper()
	made, _, err := b.flush(t.Context())
	if err != nil {
		t.Fatalf("flush: %v", err)
	}
	return made
}

// TestBanBookLocalThreshold: strikes on one node alone ban at once, before
// any write; the flush makes the ban in the store; the ban ends.
func TestBanBookLocalThreshold(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	b := newTestBook(NewMemoryBans(), "a", clock)
	attacker, bystander := netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("198.51.100.1")
	for i := range 3 {
		if b.isBanned(attacker) {
			t.Fatalf("banned after %d strikes, threshold 3", i)
		}
		b.strike(attacker, banFailedLogins, "c1")
	}
	a := newAdmission(admissionLimits{perIP: 10, unauth: 10, unauthPerIP: 10, unauthPerNet: 10}, b)
	if reason, _, ok := a.admit(attacker); ok || reason != reasonBanned {
		t.Fatalf("banned address admitted: %q %v", reason, ok)
	}
	if _, _, ok := a.admit(bystander); !ok {
		t.Fatal("another address suffers from the ban")
	}
	made := mustFlush(t, b)
	if len(made) != 1 || made[0].IP != attacker || made[0].Node != "a" || made[0].connID != "c1" || made[0].Reason != banFailedLogins {
		t.Fatalf("bans made: %+v", made)
	}
	clock.advance(testBanRule.Duration)
	if err := b.refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if b.isBanned(attacker) {
		t.Fatal("still banned after the ban ended")
	}
}

// TestBanBookSharedAcrossNodes: strikes spread over three nodes, none of
// which reaches the threshold alone, ban the address on all of them once
// they have written and read.
func TestBanBookSharedAcrossNodes(t *testing.T) {
	t.Parallel()
	clock, store := newFakeClock(), NewMemoryBans()
	ip := netip.MustParseAddr("127.0.0.5")
	var books []*banBook
	for _, node := range []string{"a", "b", "c"} {
		b := newTestBook(store, node, clock)
		b.strike(ip, banFailedLogins, "c-"+node)
		books = append(books, b)
	}
	var made []madeBan
	for _, b := range books {
		if b.isBanned(ip) {
			t.Fatalf("node %s banned on its own strike", b.node)
		}
		made = append(made, mustFlush(t, b)...)
	}
	if len(made) != 1 || made[0].Node != "c" || made[0].Failures != 3 {
		t.Fatalf("bans made: %+v", made)
	}
	for _, b := range books {
		if err := b.refresh(t.Context()); err != nil {
			t.Fatal(err)
		}
		if !b.isBanned(ip) {
			t.Errorf("node %s does not see the ban", b.node)
		}
	}
}

// TestBanBookBoundsWrites: a flush is one write whatever the strikes; an
// address banned already costs none; strikes a failed write did not take
// are written with the next.
func TestBanBookBoundsWrites(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	store := &countingStore{BanStore: NewMemoryBans()}
	b := newTestBook(store, "a", clock)
	ip, hot := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	for i := range 1000 { // one address, and 256 that share the rest
		b.strike(hot, banFailedLogins, "c")
		b.strike(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), banFailedLogins, "c")
	}
	if made := mustFlush(t, b); len(made) != 257 || store.writes != 1 {
		t.Fatalf("%d bans in %d writes, want 257 in 1", len(made), store.writes)
	}
	for range 1000 {
		b.strike(hot, banFailedLogins, "c") // banned: refused before it can fail a login
	}
	if _, wrote, _ := b.flush(t.Context()); wrote || store.writes != 1 {
		t.Fatalf("strikes against a banned address were written (%d writes)", store.writes)
	}

	store.failing = true
	b.strike(ip, banFailedLogins, "c")
	b.strike(ip, banFailedLogins, "c")
	if _, _, err := b.flush(t.Context()); err == nil {
		t.Fatal("a failed write was not reported")
	}
	store.failing = false
	b.strike(ip, banFailedLogins, "c2")
	if made := mustFlush(t, b); len(made) != 1 || made[0].IP != ip || made[0].connID != "c2" {
		t.Fatalf("the strikes of the failed write were lost: %+v", made)
	}
}

func TestBanBookForgetsOldStrikes(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	b := newTestBook(NewMemoryBans(), "a", clock)
	ip := netip.MustParseAddr("203.0.113.9")
	b.strike(ip, banFailedLogins, "c")
	b.strike(ip, banFailedLogins, "c")
	mustFlush(t, b)
	clock.advance(2 * time.Minute) // outside the one-minute window
	b.strike(ip, banFailedLogins, "c")
	if made := mustFlush(t, b); len(made) != 0 {
		t.Fatalf("strikes older than the window counted towards a ban: %+v", made)
	}
}

func TestBanBookDisabled(t *testing.T) {
	t.Parallel()
	b := newBanBook(NewMemoryBans(), "a", ledger.BanRule{})
	ip := netip.MustParseAddr("203.0.113.9")
	for range 100 {
		b.strike(ip, banFailedLogins, "c")
	}
	if b.isBanned(ip) || len(b.pending) != 0 {
		t.Fatal("threshold 0 must never ban nor count")
	}
}

func TestBanBookBoundsTrackedAddresses(t *testing.T) {
	t.Parallel()
	b := newTestBook(NewMemoryBans(), "a", newFakeClock())
	ip := netip.MustParseAddr("2001:db8::")
	for range maxTracked + 10 {
		b.strike(ip, banFailedLogins, "c")
		ip = ip.Next()
	}
	if n := len(b.pending); n != maxTracked {
		t.Fatalf("%d addresses pending, want %d", n, maxTracked)
	}
	mustFlush(t, b)
	if n := len(b.pending); n != 0 {
		t.Fatalf("%d addresses pending after the flush", n)
	}
}

// TestBanBookCountsWhatTheStoreHad: strikes written by earlier flushes
// count towards the next, so a lone node bans the moment the threshold is
// reached, not a flush later; counts older than the window do not.
func TestBanBookCountsWhatTheStoreHad(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	b := newTestBook(NewMemoryBans(), "a", clock)
	ip, old := netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("203.0.113.10")
	for _, x := range []netip.Addr{ip, ip, old, old} {
		b.strike(x, banFailedLogins, "c")
	}
	mustFlush(t, b)
	b.strike(ip, banFailedLogins, "c")
	if !b.isBanned(ip) {
		t.Fatal("the third strike, two of them written, did not ban at once")
	}
	clock.advance(testBanRule.Window)
	b.strike(old, banFailedLogins, "c")
	if b.isBanned(old) {
		t.Fatal("strikes older than the window counted")
	}
}
