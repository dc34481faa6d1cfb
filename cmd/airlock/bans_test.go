package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
)

// bansTree is a configuration whose ledger holds a ban of 192.0.2.7 made
// by node-b, and failed logins of 192.0.2.8 below the threshold.
func bansTree(t *testing.T) (cfg string, l *ledger.Ledger) {
	t.Helper()
	dir := writeTree(t, map[string]string{"airlock.yaml": "node: n\n", "suppliers/.keep": ""})
	l, err := ledger.Open(context.Background(), "sqlite:"+filepath.Join(dir, "state", "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	rule := ledger.BanRule{Threshold: 10, Window: time.Minute, Duration: time.Hour}
	_, err = l.Strike(context.Background(), "node-b", time.Now(), rule, []ledger.Strikes{
		{IP: netip.MustParseAddr("192.0.2.7"), Count: 12, Reason: "too many failed logins"},
		{IP: netip.MustParseAddr("192.0.2.8"), Count: 3, Reason: "too many failed logins"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "airlock.yaml"), l
}

func TestBansList(t *testing.T) {
	t.Parallel()
	cfg, _ := bansTree(t)
	out, errOut, err := run(t, "bans", "list", "--config", cfg)
	if err != nil {
		t.Fatalf("bans list: %v\n%s", err, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "ADDRESS FAILURES BANNED UNTIL NODE REASON" {
		t.Fatalf("bans list printed:\n%s", out)
	}
	if f := strings.Fields(lines[1]); len(f) < 5 || f[0] != "192.0.2.7" || f[1] != "12" || f[3] != "node-b" || strings.Join(f[4:], " ") != "too many failed logins" {
		t.Errorf("row %q", lines[1])
	}

	out, errOut, err = run(t, "bans", "list", "--json", "--config", cfg)
	if err != nil {
		t.Fatalf("bans list --json: %v\n%s", err, errOut)
	}
	var bans []ledger.Ban
	if err := json.Unmarshal([]byte(out), &bans); err != nil || len(bans) != 1 || bans[0].IP.String() != "192.0.2.7" ||
		time.Until(bans[0].BannedUntil) < 59*time.Minute {
		t.Fatalf("bans list --json: %v\n%s", err, out)
	}
}

func TestBansLift(t *testing.T) {
	t.Parallel()
	cfg, l := bansTree(t)
	out, errOut, err := run(t, "bans", "lift", "192.0.2.7", "--reason", "supplier rotated its key", "--config", cfg)
	if err != nil || !strings.Contains(out, "192.0.2.7: ban lifted") {
		t.Fatalf("bans lift: %v\n%s%s", err, out, errOut)
	}
	if bans, err := l.Bans(context.Background(), time.Now()); err != nil || len(bans) != 0 {
		t.Fatalf("bans after the lift: %+v %v", bans, err)
	}
	evs, err := l.Events(context.Background(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	last := evs[len(evs)-1]
	if last.Kind != "ip.unbanned" || last.RemoteIP != "192.0.2.7" || !strings.HasPrefix(last.Actor, "operator") ||
		last.Detail["reason"] != "supplier rotated its key" {
		t.Fatalf("audit event of the lift: %+v", last)
	}

	for _, tc := range []struct{ name, ip, want string }{
		{"not banned", "192.0.2.8", "address not banned"},
		{"lifted already", "192.0.2.7", "address not banned"},
		{"not an address", "192.0.2.300", "lift: ParseAddr"},
	} {
		_, _, err := run(t, "bans", "lift", tc.ip, "--config", cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: bans lift %s: %v, want %q", tc.name, tc.ip, err, tc.want)
		}
		if tc.want == "address not banned" && !errors.Is(err, ledger.ErrNotBanned) {
			t.Errorf("%s: %v is not ErrNotBanned", tc.name, err)
		}
	}
}
