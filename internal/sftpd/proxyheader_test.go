package sftpd

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/airlock-gw/airlock/internal/config"
)

const banner = "SSH-2.0-OpenSSH_9.2\r\n"

// v2Header is a PROXY v2 header from client to 127.0.0.1:2222.
func v2Header(t *testing.T, cmd proxyproto.ProtocolVersionAndCommand, client string) string {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(2, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(client)),
		&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2222})
	h.Command = cmd
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tcpPair returns the server side of a loopback connection dialled from
// 127.0.0.2, after the client wrote sent (if any).
func tcpPair(t *testing.T, sent string) net.Conn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, sent); err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestUnwrapProxy(t *testing.T) {
	t.Parallel()
	peer := netip.MustParseAddr("127.0.0.2")
	trusted := &config.ProxyProtocol{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}, HeaderTimeout: time.Second}
	untrusted := &config.ProxyProtocol{Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, HeaderTimeout: time.Second}
	tests := []struct {
		name    string
		cfg     *config.ProxyProtocol
		sent    string
		remote  string // the client's address, as the server sees it
		proxy   bool   // the peer is reported as the proxy
		reason  string // the refusal before the handshake
		readErr error  // the refusal at the first read
	}{
		{name: "off", cfg: nil, sent: "PROXY TCP4 203.0.113.9 127.0.0.1 5555 2222\r\n" + banner, remote: "127.0.0.2"},
		{name: "v1", cfg: trusted, sent: "PROXY TCP4 203.0.113.9 127.0.0.1 5555 2222\r\n" + banner, remote: "203.0.113.9", proxy: true},
		{name: "v1 IPv6", cfg: trusted, sent: "PROXY TCP6 2001:db8::7 ::1 5555 2222\r\n" + banner, remote: "2001:db8::7", proxy: true},
		{name: "v1 unknown", cfg: trusted, sent: "PROXY UNKNOWN\r\n" + banner, remote: "127.0.0.2", proxy: true},
		{name: "v2", cfg: trusted, sent: v2Header(t, proxyproto.PROXY, "198.51.100.4:40000") + banner, remote: "198.51.100.4", proxy: true},
		{name: "v2 local", cfg: trusted, sent: v2Header(t, proxyproto.LOCAL, "198.51.100.4:40000") + banner, remote: "127.0.0.2", proxy: true},
		{name: "trusted without header", cfg: trusted, sent: banner, remote: "127.0.0.2", reason: reasonProxyHeaderMissing},
		{name: "trusted malformed v1", cfg: trusted, sent: "PROXY TCP4 203.0.113.999 127.0.0.1 5555 2222\r\n" + banner, remote: "127.0.0.2", reason: reasonProxyHeaderInvalid},
		{name: "trusted v1 without CRLF", cfg: trusted, sent: "PROXY TCP4 203.0.113.9 127.0.0.1 5555 2222 " + strings.Repeat("x", 200), remote: "127.0.0.2", reason: reasonProxyHeaderInvalid},
		{name: "trusted silent", cfg: &config.ProxyProtocol{Trusted: trusted.Trusted, HeaderTimeout: 100 * time.Millisecond}, remote: "127.0.0.2", reason: reasonProxyHeaderTimeout},
		{name: "trusted half a header", cfg: &config.ProxyProtocol{Trusted: trusted.Trusted, HeaderTimeout: 100 * time.Millisecond}, sent: "PROXY TCP4 ", remote: "127.0.0.2", reason: reasonProxyHeaderInvalid},
		{name: "untrusted v1", cfg: untrusted, sent: "PROXY TCP4 203.0.113.9 127.0.0.1 5555 2222\r\n" + banner, remote: "127.0.0.2", readErr: errUntrustedHeader},
		{name: "untrusted v2", cfg: untrusted, sent: v2Header(t, proxyproto.PROXY, "198.51.100.4:40000") + banner, remote: "127.0.0.2", readErr: errUntrustedHeader},
		{name: "untrusted client", cfg: untrusted, sent: banner, remote: "127.0.0.2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := &Server{now: time.Now, proxyProtocol: tt.cfg}
			nc, proxy, err := s.unwrapProxy(tcpPair(t, tt.sent))
			if got := remoteIP(nc.RemoteAddr()).String(); got != tt.remote {
				t.Errorf("remote %s, want %s", got, tt.remote)
			}
			if r, _ := errors.AsType[*proxyRefusal](err); r != nil && r.reason != tt.reason || r == nil && tt.reason != "" || r == nil && err != nil {
				t.Fatalf("refusal %v, want %q", err, tt.reason)
			}
			if err != nil {
				return
			}
			if proxy.IsValid() != tt.proxy || tt.proxy && proxy != peer {
				t.Errorf("proxy %v, want %v", proxy, tt.proxy)
			}
			got := make([]byte, len(banner))
			if _, err := io.ReadFull(nc, got); !errors.Is(err, tt.readErr) {
				t.Fatalf("read: %v, want %v", err, tt.readErr)
			}
			if tt.readErr == nil && string(got) != banner && tt.cfg != nil {
				t.Errorf("read %q after the header, want the banner", got)
			}
		})
	}
}

// FuzzScreenedConn: a stream that starts with a PROXY signature is refused,
// and any other is read back byte for byte.
func FuzzScreenedConn(f *testing.F) {
	for _, s := range []string{banner, "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "PROX", "\r\n\r\n\x00\r\nQUIT\n!", "\r\n\r\nX", "P", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		client, server := net.Pipe()
		go func() {
			_, _ = client.Write(in)
			client.Close()
		}()
		defer server.Close()
		got, err := io.ReadAll(bufio.NewReaderSize(&screenedConn{Conn: server}, 16))
		signed := bytes.HasPrefix(in, proxyproto.SIGV1) || bytes.HasPrefix(in, proxyproto.SIGV2)
		switch {
		case signed && !errors.Is(err, errUntrustedHeader):
			t.Fatalf("%q: read %q, %v; want the header refused", in, got, err)
		case signed:
		case err != nil || !bytes.Equal(got, in):
			t.Fatalf("%q: read %q, %v", in, got, err)
		}
	})
}
