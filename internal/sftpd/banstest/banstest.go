// Package banstest is the conformance test of sftpd.BanStore: every store
// (the ledger on each database, the in-memory one) must pass it.
package banstest

import (
	"net/netip"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/sftpd"
)

// Run checks the store open returns (a fresh one for each call).
func Run(t *testing.T, open func(t *testing.T) sftpd.BanStore) {
	t.Helper()
	rule := ledger.BanRule{Threshold: 5, Window: time.Minute, Duration: 10 * time.Minute}
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	ip, other := netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("2001:db8::7")
	strikes := func(n int) []ledger.Strikes {
		return []ledger.Strikes{{IP: ip, Count: n, Reason: "too many failed logins"}}
	}
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, st sftpd.BanStore)
	}{
		{"nodes' strikes add up to a ban", func(t *testing.T, st sftpd.BanStore) {
			mustStrike(t, st, "a", t0, rule, strikes(2), 0)
			got := mustStrike(t, st, "b", t0.Add(time.Second), rule,
				[]ledger.Strikes{{IP: other, Count: 1, Reason: "x"}, {IP: ip, Count: 2, Reason: "held"}}, 0)
			counted := []ledger.Ban{
				{IP: other, Failures: 1, WindowStart: t0.Add(time.Second), Node: "b", Reason: "x"},
				{IP: ip, Failures: 4, WindowStart: t0, Node: "b", Reason: "held"},
			}
			if len(got) != 2 || got[0] != counted[0] || got[1] != counted[1] {
				t.Errorf("counts: %+v, want %+v", got, counted)
			}
			made := mustStrike(t, st, "c", t0.Add(2*time.Second), rule, strikes(1), 1)
			want := ledger.Ban{IP: ip, Failures: 5, WindowStart: t0, BannedUntil: t0.Add(2*time.Second + rule.Duration),
				Node: "c", Reason: "too many failed logins", Made: true}
			if made[0] != want {
				t.Errorf("ban made: %+v, want %+v", made[0], want)
			}
			want.Made = false
			if got := mustBans(t, st, t0.Add(3*time.Second)); len(got) != 1 || got[0] != want {
				t.Errorf("bans in force: %+v, want [%+v]", got, want)
			}
		}},
		{"a banned address is left alone", func(t *testing.T, st sftpd.BanStore) {
			made := mustStrike(t, st, "a", t0, rule, strikes(7), 1)[0]
			again := mustStrike(t, st, "b", t0.Add(time.Minute), rule, strikes(9), 0)
			made.Made = false
			if again[0] != made {
				t.Errorf("strikes against a banned address: %+v, want %+v", again[0], made)
			}
			if got := mustBans(t, st, t0.Add(time.Minute)); len(got) != 1 || got[0] != made {
				t.Errorf("bans in force: %+v, want [%+v]", got, made)
			}
		}},
		{"strikes older than the window are forgotten", func(t *testing.T, st sftpd.BanStore) {
			mustStrike(t, st, "a", t0, rule, strikes(4), 0)
			later := t0.Add(rule.Window + time.Second)
			if got := mustStrike(t, st, "a", later, rule, strikes(4), 0); got[0].Failures != 4 || !got[0].WindowStart.Equal(later) {
				t.Errorf("count after the window: %+v, want 4 since %s", got[0], later)
			}
			if got := mustBans(t, st, later); len(got) != 0 {
				t.Errorf("bans in force: %+v", got)
			}
		}},
		{"a ban runs from the latest strike", func(t *testing.T, st sftpd.BanStore) {
			last := t0.Add(-200 * time.Millisecond) // counted before the write
			made := mustStrike(t, st, "a", t0, rule, []ledger.Strikes{{IP: ip, Count: 5, Reason: "r", Last: last}}, 1)
			if want := last.Add(rule.Duration); !made[0].BannedUntil.Equal(want) {
				t.Errorf("banned until %s, want %s", made[0].BannedUntil, want)
			}
		}},
		{"a ban ends and counting starts afresh", func(t *testing.T, st sftpd.BanStore) {
			mustStrike(t, st, "a", t0, rule, strikes(5), 1)
			after := t0.Add(rule.Duration)
			if got := mustBans(t, st, after); len(got) != 0 {
				t.Errorf("bans in force when the ban ended: %+v", got)
			}
			mustStrike(t, st, "a", after, rule, strikes(4), 0)
			mustStrike(t, st, "a", after.Add(time.Second), rule, strikes(1), 1)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, open(t))
		})
	}
}

// mustStrike writes strikes and checks that they made want bans. It
// returns the counts when want is 0, the bans made otherwise.
func mustStrike(t *testing.T, st sftpd.BanStore, node string, at time.Time, rule ledger.BanRule, s []ledger.Strikes, want int) []ledger.Ban {
	t.Helper()
	counts, err := st.Strike(t.Context(), node, at, rule, s)
	if err != nil {
		t.Fatalf("Strike: %v", err)
	}
	if len(counts) != len(s) {
		t.Fatalf("Strike returned %d counts for %d addresses", len(counts), len(s))
	}
	var made []ledger.Ban
	for i, c := range counts {
		if c.IP != s[i].IP {
			t.Fatalf("count %d is of %s, want %s", i, c.IP, s[i].IP)
		}
		if c.Made {
			made = append(made, c)
		}
	}
	if len(made) != want {
		t.Fatalf("Strike by %s at %s made %d bans (%+v), want %d", node, at.Format(time.TimeOnly), len(made), counts, want)
	}
	if want == 0 {
		return counts
	}
	return made
}

func mustBans(t *testing.T, st sftpd.BanStore, at time.Time) []ledger.Ban {
	t.Helper()
	bans, err := st.Bans(t.Context(), at)
	if err != nil {
		t.Fatalf("Bans: %v", err)
	}
	return bans
}
