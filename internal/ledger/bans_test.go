package ledger_test

import (
	"errors"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/ledger/ledgertest"
	"github.com/airlock-gw/airlock/internal/sftpd"
	"github.com/airlock-gw/airlock/internal/sftpd/banstest"
)

func openAt(t *testing.T, dsn string) *ledger.Ledger {
	t.Helper()
	l, err := ledger.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestBanStoreConformance runs sftpd's ban store test on a fresh database
// of each kind per case.
func TestBanStoreConformance(t *testing.T) {
	t.Parallel()
	for name, dsn := range map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "airlock.db") },
		"postgres": ledgertest.Postgres,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			banstest.Run(t, func(t *testing.T) sftpd.BanStore { return openAt(t, dsn(t)) })
		})
	}
}

// TestLift: a lift ends the ban on every node's next read, forgets the
// failures, and is audited with the operator; an address not banned is
// refused with ErrNotBanned and no event.
func TestLift(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		l := openAt(t, dsn)
		ip := netip.MustParseAddr("192.0.2.5")
		rule := ledger.BanRule{Threshold: 3, Window: time.Minute, Duration: time.Hour}
		if _, err := l.Strike(ctx, "a", time.Now(), rule, []ledger.Strikes{{IP: ip, Count: 3, Reason: "too many failed logins"}}); err != nil {
			t.Fatal(err)
		}
		if err := l.Lift(ctx, ip, ledger.Event{Actor: "operator:alice"}); err != nil {
			t.Fatalf("Lift: %v", err)
		}
		if bans, err := l.Bans(ctx, time.Now()); err != nil || len(bans) != 0 {
			t.Fatalf("bans after the lift: %+v, %v", bans, err)
		}
		if err := l.Lift(ctx, ip, ledger.Event{Actor: "operator:alice"}); !errors.Is(err, ledger.ErrNotBanned) {
			t.Fatalf("second Lift: %v, want ErrNotBanned", err)
		}
		// The failures went with the ban: two more do not ban again.
		if counts, err := l.Strike(ctx, "b", time.Now(), rule, []ledger.Strikes{{IP: ip, Count: 2, Reason: "x"}}); err != nil ||
			counts[0].Failures != 2 || counts[0].Made {
			t.Fatalf("strikes after the lift: %+v, %v", counts, err)
		}
		evs, err := l.Events(ctx, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		var lifts []ledger.Event
		for _, ev := range evs {
			if ev.Kind == "ip.unbanned" {
				lifts = append(lifts, ev)
			}
		}
		if len(lifts) != 1 || lifts[0].Actor != "operator:alice" || lifts[0].RemoteIP != ip.String() {
			t.Fatalf("ip.unbanned events: %+v", lifts)
		}
	})
}

// TestStrikeConcurrent: three nodes writing strikes against the same
// addresses at once neither lose a count nor deadlock, and make each ban
// exactly once, at the threshold.
func TestStrikeConcurrent(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		rule := ledger.BanRule{Threshold: 30, Window: time.Hour, Duration: time.Hour}
		ips := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")}
		var mu sync.Mutex
		var made []ledger.Ban
		var wg sync.WaitGroup
		for _, node := range []string{"a", "b", "c"} {
			l := openAt(t, dsn)
			wg.Go(func() {
				for range 20 {
					counts, err := l.Strike(t.Context(), node, time.Now(), rule,
						[]ledger.Strikes{{IP: ips[0], Count: 1, Reason: "r"}, {IP: ips[1], Count: 1, Reason: "r"}})
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					for _, c := range counts {
						if c.Made {
							made = append(made, c)
						}
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(made) != 2 || made[0].Failures != rule.Threshold || made[1].Failures != rule.Threshold || made[0].IP == made[1].IP {
			t.Fatalf("bans made: %+v, want one per address at %d failures", made, rule.Threshold)
		}
	})
}
