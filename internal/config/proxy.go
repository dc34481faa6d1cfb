package config

import (
	"net/netip"
	"time"
)

// ProxyProtocol has the SFTP listener read a PROXY protocol header (v1 or
// v2) from the load balancers in Trusted: the client address it names
// replaces the balancer's everywhere (allowed_ips, bans, caps, logs,
// audit). A trusted peer must send one; anyone else who sends one is
// refused.
type ProxyProtocol struct {
	Trusted []netip.Prefix
	// HeaderTimeout bounds the wait for a trusted peer's header.
	HeaderTimeout time.Duration
}

// Trusts reports whether a, a peer's own address, may send a header.
func (p *ProxyProtocol) Trusts(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, t := range p.Trusted {
		if t.Contains(a) {
			return true
		}
	}
	return false
}

// A balancer sends its header at once; a few seconds is plenty even on a
// loaded machine, and short enough that a silent peer is cut off fast.
const defaultProxyHeaderTimeout = 5 * time.Second

// parseProxyProtocol reads sftp.proxy_protocol; nil when it is absent.
func parseProxyProtocol(c *checker, f field) *ProxyProtocol {
	if !f.present() {
		return nil
	}
	m := c.mapping(f, airlockKeys["sftp"]["proxy_protocol"])
	if m == nil {
		return nil
	}
	p := &ProxyProtocol{HeaderTimeout: c.duration(m["header_timeout"], defaultProxyHeaderTimeout, false)}
	for _, it := range c.nonEmptyList(f, m, "trusted") {
		prefix, err := parsePrefix(it.val)
		if err != nil {
			c.errorf(it.line, "%s: %v", it.path, err)
			continue
		}
		if prefix.Bits() == 0 {
			c.warnf(it.line, "%s: %s trusts every address to name its own client address; make sure only the load balancer can reach sftp.listen", it.path, prefix)
		}
		p.Trusted = append(p.Trusted, prefix)
	}
	return p
}
