package config

import (
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestConsole(t *testing.T) {
	t.Parallel()
	const oidc = "  oidc: {issuer: \"https://login.example/\", client_id: airlock}\n"
	tests := []struct {
		name    string
		yaml    string
		want    []string
		console *Console // with TLS paths relative to the root
	}{
		{name: "absent", yaml: "node: n\n"},
		{name: "defaults", yaml: "console:\n  public_url: \"http://127.0.0.1:8443\"\n" + oidc + "  roles: {viewer: [analysts]}\n",
			console: &Console{Listen: "127.0.0.1:8443", PublicURL: "http://127.0.0.1:8443",
				OIDC:  OIDC{Issuer: "https://login.example/", ClientID: "airlock", RolesClaim: "groups", UsernameClaim: "preferred_username", Scopes: defaultScopes},
				Roles: map[string][]string{"viewer": {"analysts"}}, IdleTimeout: 30 * time.Minute, AbsoluteTimeout: 12 * time.Hour}},
		{name: "tls", yaml: "console:\n  listen: \"0.0.0.0:8443\"\n  public_url: \"https://airlock.example\"\n  tls: {cert: tls/c.pem, key: tls/k.pem}\n" + oidc +
			"  roles: {operator: [ops], approver: [stewards, leads]}\n  idle_timeout: 10m\n  absolute_timeout: 8h\n  session_key_env: AIRLOCK_SESSION_KEY\n",
			console: &Console{Listen: "0.0.0.0:8443", PublicURL: "https://airlock.example", TLS: &ConsoleTLS{Cert: "tls/c.pem", Key: "tls/k.pem"},
				OIDC:  OIDC{Issuer: "https://login.example/", ClientID: "airlock", RolesClaim: "groups", UsernameClaim: "preferred_username", Scopes: defaultScopes},
				Roles: map[string][]string{"operator": {"ops"}, "approver": {"stewards", "leads"}}, IdleTimeout: 10 * time.Minute, AbsoluteTimeout: 8 * time.Hour,
				SessionKeyEnv: "AIRLOCK_SESSION_KEY"}},
		{name: "behind a proxy", yaml: "console:\n  listen: \":8080\"\n  public_url: \"https://airlock.example\"\n  behind_proxy: true\n  trusted_proxies: [\"10.0.0.0/8\"]\n" +
			"  oidc: {issuer: \"https://login.example/\", client_id: airlock, client_secret_env: OIDC_SECRET, roles_claim: roles, username_claim: email, scopes: [email, roles]}\n  roles: {viewer: [all]}\n",
			console: &Console{Listen: ":8080", PublicURL: "https://airlock.example", TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
				OIDC:  OIDC{Issuer: "https://login.example/", ClientID: "airlock", ClientSecretEnv: "OIDC_SECRET", RolesClaim: "roles", UsernameClaim: "email", Scopes: []string{"email", "roles"}},
				Roles: map[string][]string{"viewer": {"all"}}, IdleTimeout: 30 * time.Minute, AbsoluteTimeout: 12 * time.Hour}},
		{name: "in clear on the network", yaml: "console:\n  listen: \"0.0.0.0:8443\"\n  public_url: \"https://airlock.example\"\n" + oidc + "  roles: {viewer: [a]}\n", want: []string{
			`airlock.yaml:2: console.listen "0.0.0.0:8443" is not a loopback address: set console.tls (cert and key) or behind_proxy: true with trusted_proxies, so that sign-ins never cross the network in clear`,
		}},
		{name: "invalid", yaml: "console:\n  public_url: \"http://airlock.example\"\n  behind_proxy: true\n  oidc: {client_id: \"\", issuer: \"ftp://x\", client_secret_env: \"A-B\"}\n  roles: {admin: [x]}\n  tls: {cert: missing.pem}\n  idle_timeout: 2h\n  absolute_timeout: 1h\n", want: []string{
			`airlock.yaml:2: console.public_url: "http://airlock.example" sends session cookies in clear; it is allowed only when the URL's host is a loopback address (localhost, 127.0.0.1, ::1), not "airlock.example"`,
			`airlock.yaml:2: missing required key "trusted_proxies"`,
			`airlock.yaml:2: console.roles grants no role to anyone: map at least one of viewer, operator, approver to values of the roles claim`,
			`airlock.yaml:4: console.oidc.issuer: "ftp://x" must be an https:// URL`,
			`airlock.yaml:4: console.oidc.client_id must not be empty`,
			`airlock.yaml:4: console.oidc.client_secret_env: "A-B" is not an environment variable name (letters, digits and _, not starting with a digit)`,
			`airlock.yaml:5: unknown key "admin"`,
			`airlock.yaml:6: console.tls.cert: "missing.pem": no such file or directory`,
			`airlock.yaml:6: missing required key "key"`,
			`airlock.yaml:8: console.absolute_timeout (1h0m0s) must be at least idle_timeout (2h0m0s)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := writeTree(t, map[string]string{"airlock.yaml": tt.yaml, "suppliers/README.md": "not a supplier",
				"tls/c.pem": "cert", "tls/k.pem": "key"})
			cfg, _, err := Check(filepath.Join(dir, "airlock.yaml"))
			diffLines(t, messages(t, err, dir), tt.want)
			if cfg == nil {
				return
			}
			want := tt.console
			if want != nil && want.TLS != nil {
				want.TLS.Cert, want.TLS.Key = filepath.Join(dir, want.TLS.Cert), filepath.Join(dir, want.TLS.Key)
			}
			if !reflect.DeepEqual(cfg.Console, want) {
				t.Errorf("console = %+v, want %+v", cfg.Console, want)
			}
		})
	}
}
