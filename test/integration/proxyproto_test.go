package integration

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/testpeer"
)

// haproxy is a real HAProxy in TCP mode in front of one gateway or
// several, with a frontend per PROXY protocol version. It connects to
// airlock from 127.0.0.1; clients reach it from other loopback addresses,
// which it reports in its headers.
type haproxy struct {
	t      *testing.T
	cfg    string
	v1, v2 string // frontend addresses: send-proxy, send-proxy-v2
	proc   *testpeer.Process
}

// haproxyServer is one gateway behind HAProxy: its SFTP address and, for
// a health-checked server, its HTTP address, whose /readyz says whether it
// takes connections.
type haproxyServer struct{ sftp, http string }

// startHAProxy balances over the gateways at these SFTP addresses, with
// no health checks.
func startHAProxy(t *testing.T, backend string, more ...string) *haproxy {
	t.Helper()
	var servers []haproxyServer
	for _, addr := range append([]string{backend}, more...) {
		servers = append(servers, haproxyServer{sftp: addr})
	}
	return startHAProxyOver(t, servers)
}

// startHAProxyOver balances over servers, round robin. A connection that
// a server refuses is retried on another (a draining node refuses them
// until its failing /readyz takes it out). A slow /readyz (Postgres on a
// loaded machine) must not take every node out at once: hence the check
// timeout, and two failures before a node is out.
func startHAProxyOver(t *testing.T, servers []haproxyServer) *haproxy {
	t.Helper()
	h := &haproxy{t: t, cfg: filepath.Join(t.TempDir(), "haproxy.cfg"), v1: testpeer.FreeAddr(t), v2: testpeer.FreeAddr(t)}
	var cfg strings.Builder
	fmt.Fprint(&cfg, `global
  maxconn 200
defaults
  mode tcp
  balance roundrobin
  timeout connect 10s
  timeout client 2m
  timeout server 2m
  balance roundrobin
  retries 3
  option redispatch 1
  option httpchk GET /readyz
  timeout check 3s
  default-server inter 250ms fall 2 rise 2
`)
	for _, fe := range []struct{ name, bind, send string }{{"v1", h.v1, "send-proxy"}, {"v2", h.v2, "send-proxy-v2"}} {
		fmt.Fprintf(&cfg, "listen %s\n  bind %s\n", fe.name, fe.bind)
		for i, s := range servers {
			fmt.Fprintf(&cfg, "  server airlock%d %s %s", i+1, s.sftp, fe.send)
			if s.http != "" {
				_, port, _ := net.SplitHostPort(s.http)
				fmt.Fprintf(&cfg, " check port %s", port)
			}
			fmt.Fprintln(&cfg)
		}
	}
	writeFile(t, h.cfg, cfg.String())
	h.start()
	t.Cleanup(h.stop)
	return h
}

func (h *haproxy) start() {
	h.t.Helper()
	bin := testpeer.Require(h.t, "haproxy")
	var log syncBuffer
	cmd := exec.Command(bin, "-db", "-f", h.cfg) // -db: in the foreground
	cmd.Stdout, cmd.Stderr = &log, &log
	h.proc = testpeer.Start(h.t, cmd)
	for _, addr := range []string{h.v1, h.v2} {
		if err := testpeer.Listening(addr, h.proc.Exited()); err != nil {
			h.t.Fatalf("start haproxy: %v\n%s", err, log.String())
		}
	}
}

func (h *haproxy) stop() {
	if h.proc != nil {
		h.proc.Stop(10 * time.Second)
		h.proc = nil
	}
}

// refusedFor reads the count of connections refused for reason.
func (g *gateway) refusedFor(reason string) float64 {
	return g.metric(fmt.Sprintf(`airlock_sftp_connections_refused_total{reason=%q}`, reason))
}

// TestProxyProtocolBehindHAProxy: behind HAProxy (send-proxy and
// send-proxy-v2), the client's own address, not HAProxy's, is what
// allowed_ips, bans, the transfer rows and the audit see; a trusted peer
// must send a header and an untrusted one must not.
func TestProxyProtocolBehindHAProxy(t *testing.T) {
	t.Parallel()
	key := newClientKey(t)
	g := newGateway(t, gatewayOpts{
		sftpExtra: "  proxy_protocol:\n    trusted: [\"127.0.0.1/32\"]\n    header_timeout: \"5s\"\n  max_unauthenticated_per_ip: 2\n" +
			"  ban:\n    threshold: 3\n    window: \"10m\"\n    duration: \"10m\"\n",
		// HAProxy's own address is allowed, so that a gateway which took
		// it for the client's would let the refused clients in.
		suppliers:  []supplierSpec{{name: "acme", keys: []clientKey{key}, allowedIPs: []string{"127.0.0.1/32", "127.0.0.2/32", "127.0.0.4/32", "127.0.0.6/32"}}},
		stallScans: true,
	})
	g.start()
	h := startHAProxy(t, g.sftpAddr)

	upload := func(t *testing.T, via, from, name string) (string, error) {
		t.Helper()
		src, _ := randomFile(t, 256<<10)
		out, err := sftpCommandTo(t, via, "acme", key, fmt.Sprintf("put %s %s\n", src, name), "-o", "BindAddress="+from).CombinedOutput()
		return string(out), err
	}
	// recordedFrom checks that the upload of name is recorded as from the
	// address want, behind the proxy named (or none).
	recordedFrom := func(t *testing.T, name, want, proxy string) {
		t.Helper()
		tr, ok := transferAt(g.transfers(), "acme", "/"+name)
		if !ok {
			t.Fatalf("no transfer row for %s", name)
		}
		if tr.RemoteIP != want {
			t.Errorf("%s: transfer row remote_ip %q, want %q", name, tr.RemoteIP, want)
		}
		var connect, login ledger.Event
		for _, ev := range g.eventsOf(tr.ID) {
			if ev.Kind == "upload.start" && ev.RemoteIP != want {
				t.Errorf("%s: upload.start remote_ip %q, want %q", name, ev.RemoteIP, want)
			}
		}
		for _, ev := range g.events() {
			switch {
			case ev.Kind == "connect" && ev.RemoteIP == want:
				connect = ev
			case ev.Kind == "auth.ok" && ev.RemoteIP == want:
				login = ev
			}
		}
		if connect.Seq == 0 || login.Seq == 0 || connect.Detail["proxy_ip"] != proxy {
			t.Errorf("%s: want connect (proxy_ip %q) and auth.ok events from %s, got %+v, %+v", name, proxy, want, connect, login)
		}
	}

	for _, tc := range []struct{ name, via, from string }{
		{"send-proxy", h.v1, "127.0.0.2"},
		{"send-proxy-v2", h.v2, "127.0.0.4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := strings.ReplaceAll(tc.name, "-", "_") + ".bin"
			if out, err := upload(t, tc.via, tc.from, name); err != nil {
				t.Fatalf("upload through HAProxy from %s: %v\n%s", tc.from, err, out)
			}
			recordedFrom(t, name, tc.from, "127.0.0.1")
			if log := g.log.String(); !strings.Contains(log, `"remote_ip":"`+tc.from+`"`) || !strings.Contains(log, `"proxy_ip":"127.0.0.1"`) {
				t.Errorf("the log does not name %s behind 127.0.0.1:\n%s", tc.from, g.logTail(20))
			}
		})
	}

	t.Run("direct client from an untrusted address", func(t *testing.T) {
		if out, err := upload(t, g.sftpAddr, "127.0.0.6", "direct.bin"); err != nil {
			t.Fatalf("direct upload from 127.0.0.6: %v\n%s", err, out)
		}
		recordedFrom(t, "direct.bin", "127.0.0.6", "")
	})

	t.Run("allowed_ips sees the client", func(t *testing.T) {
		out, err := upload(t, h.v2, "127.0.0.5", "refused.bin")
		if err == nil {
			t.Fatalf("127.0.0.5 is not in allowed_ips but uploaded through HAProxy:\n%s", out)
		}
		if _, ok := transferAt(g.transfers(), "acme", "/refused.bin"); ok {
			t.Error("a transfer row for the refused client")
		}
		eventually(t, 10*time.Second, "auth.fail from 127.0.0.5", func() bool {
			for _, ev := range g.events() {
				if ev.Kind == "auth.fail" && ev.RemoteIP == "127.0.0.5" {
					return true
				}
			}
			return false
		})
	})

	t.Run("bans fall on the client, not the proxy", func(t *testing.T) {
		for i := 0; i < 3 && !g.banned("127.0.0.5"); i++ {
			_, _ = upload(t, h.v1, "127.0.0.5", "refused.bin")
		}
		eventually(t, 10*time.Second, "127.0.0.5 banned", func() bool { return g.banned("127.0.0.5") })
		if g.banned("127.0.0.1") {
			t.Fatal("HAProxy's address was banned")
		}
		if out, err := upload(t, h.v1, "127.0.0.2", "after_ban.bin"); err != nil {
			t.Fatalf("another client through the same HAProxy after the ban: %v\n%s", err, out)
		}
		recordedFrom(t, "after_ban.bin", "127.0.0.2", "127.0.0.1")
	})

	t.Run("caps per address see the client", func(t *testing.T) {
		// 127.0.0.7 holds its 2 unauthenticated slots through HAProxy;
		// its third connection is refused, and a client from 127.0.0.2
		// still gets in through the same HAProxy.
		before := g.refusedFor("too-many-unauthenticated-from-ip")
		for range 3 {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 7)}, Timeout: 10 * time.Second}
			c, err := d.Dial("tcp", h.v2)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
		}
		eventually(t, 10*time.Second, "the third connection from 127.0.0.7 refused", func() bool {
			return g.refusedFor("too-many-unauthenticated-from-ip") > before
		})
		if out, err := upload(t, h.v2, "127.0.0.2", "beside_holder.bin"); err != nil {
			t.Fatalf("upload from 127.0.0.2 while 127.0.0.7 holds its slots: %v\n%s", err, out)
		}
		recordedFrom(t, "beside_holder.bin", "127.0.0.2", "127.0.0.1")
	})

	t.Run("trusted address without a header", func(t *testing.T) {
		before := g.refusedFor("proxy-header-missing")
		if out, err := upload(t, g.sftpAddr, "127.0.0.1", "no_header.bin"); err == nil {
			t.Fatalf("a direct upload from the trusted 127.0.0.1 without a header succeeded:\n%s", out)
		}
		eventually(t, 10*time.Second, "the refusal counted", func() bool { return g.refusedFor("proxy-header-missing") > before })
		if !strings.Contains(g.log.String(), `"reason":"proxy-header-missing"`) {
			t.Errorf("the refusal is not logged:\n%s", g.logTail(20))
		}
		if _, ok := transferAt(g.transfers(), "acme", "/no_header.bin"); ok {
			t.Error("a transfer row for the refused connection")
		}
	})

	t.Run("header from an untrusted address", func(t *testing.T) {
		before := g.refusedFor("proxy-header-untrusted")
		// 127.0.0.3 claims to speak for 127.0.0.2, which acme allows.
		rest := sendRawHeader(t, g.sftpAddr, "127.0.0.3", "PROXY TCP4 127.0.0.2 127.0.0.1 40000 "+g.port()+"\r\n")
		if rest != "" {
			t.Errorf("after its banner the server went on with the handshake (%d more bytes)", len(rest))
		}
		eventually(t, 10*time.Second, "the refusal counted", func() bool { return g.refusedFor("proxy-header-untrusted") > before })
		if !strings.Contains(g.log.String(), `"reason":"proxy-header-untrusted"`) {
			t.Errorf("the refusal is not logged:\n%s", g.logTail(20))
		}
		if ev, ok := g.findEvent(0, "connect.refused", map[string]string{"reason": "proxy-header-untrusted"}); !ok || ev.RemoteIP != "127.0.0.3" {
			t.Errorf("no connect.refused event naming 127.0.0.3: %+v", ev)
		}
	})

	t.Run("HAProxy restarted", func(t *testing.T) {
		h.stop()
		h.start()
		if out, err := upload(t, h.v2, "127.0.0.4", "after_restart.bin"); err != nil {
			t.Fatalf("upload after HAProxy restarted: %v\n%s", err, out)
		}
		recordedFrom(t, "after_restart.bin", "127.0.0.4", "127.0.0.1")
	})
	g.auditVerifies(t)
}

// banned reports whether an ip.banned event names ip.
func (g *gateway) banned(ip string) bool {
	for _, ev := range g.events() {
		if ev.Kind == "ip.banned" && ev.RemoteIP == ip {
			return true
		}
	}
	return false
}

// sendRawHeader connects to addr from the address from, sends header and
// an SSH banner, and returns what the server sent after its own banner
// line until it closed the connection.
func sendRawHeader(t *testing.T, addr, from, header string) string {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, header+"SSH-2.0-OpenSSH_9.2\r\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	banner, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(banner, "SSH-2.0-") {
		t.Fatalf("server banner %q: %v", banner, err)
	}
	// Closed with our banner unread, the connection may end in a reset
	// rather than EOF; only a timeout means the server kept it open.
	rest, err := io.ReadAll(r)
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		t.Fatalf("the server kept the connection open: %v (it sent %d bytes after its banner)", err, len(rest))
	}
	return string(rest)
}
