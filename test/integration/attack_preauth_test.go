package integration

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

// The addresses of the pre-authentication attack. Loopback answers the whole
// of 127/8 on Linux; the attackers share 127.0.0.0/24, the supplier is in
// another /24.
var (
	slotHolders = []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"}
	supplierIP  = "127.0.1.1"
)

// holdings records how long the server let silent connections stay.
type holdings struct {
	mu       sync.Mutex
	n        int
	shortest time.Duration
}

func (h *holdings) add(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 || d < h.shortest {
		h.shortest = d
	}
	h.n++
}

// holdSlots keeps up to n silent connections open from ip to addr until ctx
// ends, dialling again whenever the server closes one.
func holdSlots(ctx context.Context, ip, addr string, n int, held *holdings) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for ctx.Err() == nil {
				c, err := d.DialContext(ctx, "tcp", addr)
				if err != nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				stop := context.AfterFunc(ctx, func() { c.Close() })
				start := time.Now()
				buf := make([]byte, 512)
				for {
					if _, err := c.Read(buf); err != nil { // the server's banner, then its close
						break
					}
				}
				alive := time.Since(start)
				if !stop() { // ended by the test, not the server
					return
				}
				c.Close()
				if alive > time.Second {
					held.add(alive)
				} else {
					time.Sleep(100 * time.Millisecond) // refused: do not spin
				}
			}
		})
	}
	wg.Wait()
}

// TestAttackPreauthSlotHolders: five addresses hold as many silent
// connections as they can. They cannot fill the unauthenticated pool (caps
// per address and per /24), the pressure shortens their deadline, and their
// timeouts earn them bans, while a supplier from another network logs in and
// uploads throughout.
func TestAttackPreauthSlotHolders(t *testing.T) {
	t.Parallel()
	key := newClientKey(t)
	g := newGateway(t, gatewayOpts{
		// Without the shares, 5 addresses × 6 connections fill all 24.
		sftpExtra: "  handshake_timeout: \"12s\"\n  max_unauthenticated: 24\n" +
			"  max_unauthenticated_per_ip: 4\n  max_unauthenticated_per_network: 16\n" +
			"  ban:\n    threshold: 3\n    window: \"10m\"\n    duration: \"10m\"\n",
		suppliers: []supplierSpec{{name: "acme", keys: []clientKey{key}, allowedIPs: []string{supplierIP + "/32"}}},
	})
	g.start()
	f := newFence(t, g, "acme")

	ctx, cancel := context.WithCancel(context.Background())
	var attackers sync.WaitGroup
	var held holdings
	for _, ip := range slotHolders {
		attackers.Go(func() { holdSlots(ctx, ip, g.sftpAddr, 6, &held) })
	}
	defer func() { cancel(); attackers.Wait() }()

	eventually(t, 15*time.Second, "the attackers to reach their caps", func() bool {
		return g.metric(`airlock_sftp_connections_refused_total{reason="too-many-unauthenticated-from-ip"}`) >= 1 &&
			g.metric(`airlock_sftp_connections_refused_total{reason="too-many-unauthenticated-from-network"}`) >= 1
	})

	// The supplier uploads, one session after another, until every
	// attacker is banned (bounded), then once more.
	bind := []string{"-o", "BindAddress=" + supplierIP}
	banned := func() []string {
		var ips []string
		for _, ev := range g.events() {
			if ev.Kind == "ip.banned" && ev.Detail["reason"] == "held connections without logging in" && !slices.Contains(ips, ev.RemoteIP) {
				ips = append(ips, ev.RemoteIP)
			}
		}
		return ips
	}
	var uploads []string
	var slowest time.Duration
	deadline := time.Now().Add(90 * time.Second)
	for last := false; ; {
		src, sha := randomFile(t, 64<<10)
		name := fmt.Sprintf("during-%02d.bin", len(uploads))
		start := time.Now()
		if out, err := g.sftpBatch("acme", key, fmt.Sprintf("put %s %s\n", src, name), bind...); err != nil {
			t.Fatalf("upload %s during the attack: %v\n%s", name, err, out)
		}
		slowest = max(slowest, time.Since(start))
		uploads = append(uploads, name+" "+sha)
		if last {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 90s only %v of %v are banned", banned(), slotHolders)
		}
		if len(banned()) == len(slotHolders) {
			last = true
		}
		time.Sleep(500 * time.Millisecond)
	}
	held.mu.Lock()
	t.Logf("%d uploads during the attack, the slowest session took %s; %d connections were held to their deadline, the shortest for %s",
		len(uploads), slowest.Round(time.Millisecond), held.n, held.shortest.Round(time.Millisecond))
	// handshake_timeout is 12s; under pressure a new connection has 5s.
	if held.shortest > 8*time.Second {
		t.Errorf("no silent connection was dropped sooner than %s: the deadline did not shorten under pressure", held.shortest)
	}
	held.mu.Unlock()
	if len(uploads) < 3 {
		t.Errorf("only %d uploads during the attack", len(uploads))
	}
	if g.metric(`airlock_sftp_connections_refused_total{reason="banned"}`) < 1 {
		t.Error("no connection refused as banned once the attackers were banned")
	}
	if g.metric(`airlock_sftp_connections_refused_total{reason="handshake-timeout"}`) < float64(3*len(slotHolders)) {
		t.Error("fewer handshake timeouts than it takes to ban every attacker")
	}
	cancel()
	attackers.Wait()

	for _, u := range uploads {
		var name, sha string
		fmt.Sscan(u, &name, &sha)
		assertArrived(t, g, "acme", "/"+name, sha, 64<<10)
	}
	f.check(t)
	g.auditVerifies(t)
}
