package sftpd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/pires/go-proxyproto"
)

// Reasons a connection is refused for its PROXY protocol header.
const (
	reasonProxyHeaderMissing   = "proxy-header-missing"
	reasonProxyHeaderInvalid   = "proxy-header-invalid"
	reasonProxyHeaderTimeout   = "proxy-header-timeout"
	reasonProxyHeaderUntrusted = "proxy-header-untrusted"
)

// errUntrustedHeader ends the handshake of a peer that sent a PROXY header
// without being trusted to: it could otherwise claim any address.
var errUntrustedHeader = errors.New("PROXY protocol header from an address not in sftp.proxy_protocol.trusted")

// proxyRefusal is why a trusted peer's connection was refused.
type proxyRefusal struct {
	reason string
	err    error
}

func (e *proxyRefusal) Error() string { return "PROXY protocol header: " + e.err.Error() }
func (e *proxyRefusal) Unwrap() error { return e.err }

// unwrapProxy applies sftp.proxy_protocol to a new connection, before
// anything else looks at its address. A trusted peer's connection is
// returned as the client's (RemoteAddr is the address its header names),
// with proxy set to the peer; it is refused without a valid header in
// time. Anyone else's is returned as is, screened for a header it must not
// send.
func (s *Server) unwrapProxy(nc net.Conn) (conn net.Conn, proxy netip.Addr, err error) {
	if s.proxyProtocol == nil {
		return nc, netip.Addr{}, nil
	}
	peer := remoteIP(nc.RemoteAddr())
	if !s.proxyProtocol.Trusts(peer) {
		return &screenedConn{Conn: nc}, netip.Addr{}, nil
	}
	conn, err = readProxyHeader(nc, s.now().Add(s.proxyProtocol.HeaderTimeout))
	if err != nil {
		return nc, netip.Addr{}, err
	}
	return conn, peer, nil
}

// proxyHeaderBuffer holds a whole v1 header (at most 107 bytes), which the
// parser needs at once; v2 headers are read in parts.
const proxyHeaderBuffer = 256

// readProxyHeader reads the header nc must begin with by deadline.
func readProxyHeader(nc net.Conn, deadline time.Time) (net.Conn, error) {
	if err := nc.SetReadDeadline(deadline); err != nil {
		return nil, &proxyRefusal{reasonProxyHeaderInvalid, err}
	}
	br := bufio.NewReaderSize(nc, proxyHeaderBuffer)
	h, err := proxyproto.Read(br)
	_ = nc.SetReadDeadline(time.Time{})
	var ne net.Error
	switch {
	case errors.Is(err, proxyproto.ErrNoProxyProtocol):
		return nil, &proxyRefusal{reasonProxyHeaderMissing, err}
	case errors.As(err, &ne) && ne.Timeout():
		return nil, &proxyRefusal{reasonProxyHeaderTimeout, err}
	case err != nil:
		return nil, &proxyRefusal{reasonProxyHeaderInvalid, err}
	}
	remote := nc.RemoteAddr()
	if h.Command.IsProxy() && !h.TransportProtocol.IsUnspec() {
		src, _, ok := h.TCPAddrs()
		if !ok {
			return nil, &proxyRefusal{reasonProxyHeaderInvalid, fmt.Errorf("the client's address is not TCP over IPv4 or IPv6 (%v)", h.SourceAddr)}
		}
		remote = src
	} // else the balancer's own connection (a health check): its address stands
	rest, _ := br.Peek(br.Buffered())
	return &proxiedConn{Conn: nc, r: io.MultiReader(bytes.NewReader(bytes.Clone(rest)), nc), remote: remote}, nil
}

// refuseProxyHeader logs and counts a trusted peer's connection refused for
// its header. Like the other refusals before admission it is not audited:
// the peer is a balancer, which could otherwise flood the ledger for its
// clients.
func (s *Server) refuseProxyHeader(log *slog.Logger, err error) {
	reason := reasonProxyHeaderInvalid
	if r, ok := errors.AsType[*proxyRefusal](err); ok {
		reason = r.reason
	}
	log.Warn("connection refused", "reason", reason, "err", err)
	s.metrics.connectionsRefused.WithLabelValues(reason).Inc()
}

// proxiedConn is a balancer's connection seen as its client's: RemoteAddr
// is the address the header named, and reads begin with the bytes read
// past the header.
type proxiedConn struct {
	net.Conn
	r      io.Reader
	remote net.Addr
}

func (c *proxiedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *proxiedConn) RemoteAddr() net.Addr       { return c.remote }

// screenedConn is a connection from a peer not trusted to send a PROXY
// header: its first read fails with errUntrustedHeader if the stream begins
// with one. Nothing is read before the SSH handshake reads, so the server
// still sends its banner first, as clients that wait for it need.
type screenedConn struct {
	net.Conn
	r   io.Reader // nil until the first read
	err error     // sticky
}

func (c *screenedConn) Read(p []byte) (int, error) {
	if c.r == nil && c.err == nil {
		br := bufio.NewReaderSize(c.Conn, len(proxyproto.SIGV2))
		header, err := startsWithHeader(br)
		switch {
		case header:
			c.err = errUntrustedHeader
		case err != nil && !errors.Is(err, io.EOF): // at EOF, what came is passed on
			c.err = err
		default:
			rest, _ := br.Peek(br.Buffered())
			c.r = io.MultiReader(bytes.NewReader(bytes.Clone(rest)), c.Conn)
		}
	}
	if c.err != nil {
		return 0, c.err
	}
	return c.r.Read(p)
}

// startsWithHeader reads as few bytes as tell whether br begins with a
// PROXY protocol signature, v1 or v2. A client's "SSH-" banner rules both
// out at its first byte.
func startsWithHeader(br *bufio.Reader) (bool, error) {
	for n := 1; ; n++ {
		b, err := br.Peek(n)
		if err != nil {
			return false, err
		}
		v1, v2 := bytes.HasPrefix(proxyproto.SIGV1, b), bytes.HasPrefix(proxyproto.SIGV2, b)
		switch {
		case !v1 && !v2:
			return false, nil
		case v1 && n == len(proxyproto.SIGV1), v2 && n == len(proxyproto.SIGV2):
			return true, nil
		}
	}
}
