package config

import (
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestProxyProtocolConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		yaml  string
		want  []string
		warns []string
		check func(t *testing.T, p *ProxyProtocol)
	}{
		{name: "absent is off", yaml: "sftp:\n  listen: \":2222\"\n", check: func(t *testing.T, p *ProxyProtocol) {
			if p != nil {
				t.Errorf("proxy_protocol %+v, want nil", p)
			}
		}},
		{name: "trusted with default timeout", yaml: "sftp:\n  proxy_protocol:\n    trusted: [10.0.0.0/8, \"192.0.2.7\", \"2001:db8::/32\"]\n",
			check: func(t *testing.T, p *ProxyProtocol) {
				want := &ProxyProtocol{HeaderTimeout: 5 * time.Second, Trusted: []netip.Prefix{
					netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("2001:db8::/32"),
				}}
				if !reflect.DeepEqual(p, want) {
					t.Errorf("proxy_protocol %+v, want %+v", p, want)
				}
			}},
		{name: "header timeout", yaml: "sftp:\n  proxy_protocol:\n    trusted: [127.0.0.1]\n    header_timeout: 2s\n",
			check: func(t *testing.T, p *ProxyProtocol) {
				if p.HeaderTimeout != 2*time.Second {
					t.Errorf("header_timeout %v", p.HeaderTimeout)
				}
			}},
		{name: "trusted missing", yaml: "sftp:\n  proxy_protocol:\n    header_timeout: 2s\n",
			want: []string{`airlock.yaml:3: missing required key "trusted"`}},
		{name: "empty section", yaml: "sftp:\n  proxy_protocol: {}\n",
			want: []string{`airlock.yaml:2: missing required key "trusted"`}},
		{name: "trusted empty", yaml: "sftp:\n  proxy_protocol:\n    trusted: []\n",
			want: []string{`airlock.yaml:3: sftp.proxy_protocol.trusted must list at least one entry`}},
		{name: "trusted not a list", yaml: "sftp:\n  proxy_protocol:\n    trusted: 10.0.0.0/8\n",
			want: []string{`airlock.yaml:3: sftp.proxy_protocol.trusted: expected a list, got a string`}},
		{name: "bad entries", yaml: "sftp:\n  proxy_protocol:\n    trusted:\n      - 10.0.0.1/8\n      - balancer.internal\n      - 7\n",
			want: []string{
				`airlock.yaml:4: sftp.proxy_protocol.trusted[0]: "10.0.0.1/8" has host bits set (did you mean 10.0.0.0/8?)`,
				`airlock.yaml:5: sftp.proxy_protocol.trusted[1]: "balancer.internal" is not an IP address or CIDR`,
				`airlock.yaml:6: sftp.proxy_protocol.trusted[2]: expected a string, got a number`,
			}},
		{name: "bad timeout", yaml: "sftp:\n  proxy_protocol:\n    trusted: [127.0.0.1]\n    header_timeout: 0s\n",
			want: []string{`airlock.yaml:4: sftp.proxy_protocol.header_timeout must be greater than 0`}},
		{name: "unknown key", yaml: "sftp:\n  proxy_protocol:\n    trusted: [127.0.0.1]\n    require: true\n",
			want: []string{`airlock.yaml:4: unknown key "require"`}},
		{name: "not a mapping", yaml: "sftp:\n  proxy_protocol: [127.0.0.1]\n",
			want: []string{`airlock.yaml:2: sftp.proxy_protocol: expected a mapping, got a list`}},
		{name: "everyone trusted warns", yaml: "sftp:\n  proxy_protocol:\n    trusted: [\"::/0\"]\n",
			warns: []string{`airlock.yaml:3: warning: sftp.proxy_protocol.trusted[0]: ::/0 trusts every address to name its own client address; make sure only the load balancer can reach sftp.listen`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := writeTree(t, map[string]string{"airlock.yaml": tt.yaml, "suppliers/README.md": "not a supplier"})
			cfg, warns, err := Check(filepath.Join(dir, "airlock.yaml"))
			diffLines(t, messages(t, err, dir), tt.want)
			diffLines(t, messages(t, warns, dir), tt.warns)
			if tt.check != nil && cfg != nil {
				tt.check(t, cfg.SFTP.ProxyProtocol)
			}
		})
	}
}

func TestProxyProtocolTrusts(t *testing.T) {
	t.Parallel()
	p := &ProxyProtocol{Trusted: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("2001:db8::/32")}}
	for addr, want := range map[string]bool{
		"10.1.2.3": true, "::ffff:10.1.2.3": true, "10.2.0.1": false,
		"2001:db8::1": true, "fe80::1%eth0": false, "127.0.0.1": false,
	} {
		if got := p.Trusts(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Trusts(%s) = %v, want %v", addr, got, want)
		}
	}
}
