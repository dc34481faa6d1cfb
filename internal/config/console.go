package config

import (
	"cmp"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Console configures the web console; nil when airlock.yaml has no
// console section (no console is served).
type Console struct {
	Listen string
	// PublicURL is the console's address as browsers reach it: the OIDC
	// redirect URL is PublicURL + "/auth/callback".
	PublicURL string
	// TLS serves the console over HTTPS with this certificate; nil for
	// plain HTTP, allowed on a loopback listener or behind a trusted proxy.
	TLS *ConsoleTLS
	// TrustedProxies, when set (behind_proxy: true), are the only peers
	// the console accepts connections from; they terminate TLS and name
	// the client in X-Forwarded-For.
	TrustedProxies []netip.Prefix
	OIDC           OIDC
	// Roles maps each console role (RoleViewer, RoleOperator, RoleApprover)
	// to the values of OIDC.RolesClaim that grant it.
	Roles map[string][]string
	// IdleTimeout ends a session unused this long; AbsoluteTimeout ends
	// any session this long after sign-in.
	IdleTimeout, AbsoluteTimeout time.Duration
	// SessionKeyEnv names the environment variable holding the key that
	// seals session cookies (32 bytes or more, base64); "" makes a new
	// key at each start, which signs everyone out on a restart.
	SessionKeyEnv string
}

// ConsoleTLS is the console's own certificate and key (absolute paths).
type ConsoleTLS struct {
	Cert, Key string
}

// OIDC is the identity provider the console signs people in with.
type OIDC struct {
	Issuer          string
	ClientID        string
	ClientSecretEnv string // "" for a public client (PKCE alone)
	RolesClaim      string // the ID token claim holding groups or roles
	// UsernameClaim holds the name that stands for the person in four
	// eyes: the name they write files under (a dataset's users).
	UsernameClaim string
	// Scopes are asked for besides openid: those that put the email,
	// the username and the roles claims in the ID token.
	Scopes []string
}

// The console roles: a viewer reads; an operator also acts on quarantine
// and retries; an approver also approves and rejects.
const (
	RoleViewer   = "viewer"
	RoleOperator = "operator"
	RoleApprover = "approver"
)

const (
	defaultConsoleListen   = "127.0.0.1:8443"
	defaultRolesClaim      = "groups"
	defaultUsernameClaim   = "preferred_username"
	defaultConsoleIdle     = 30 * time.Minute
	defaultConsoleAbsolute = 12 * time.Hour
)

var defaultScopes = []string{"profile", "email", "groups"}

var consoleKeys = keySet{
	"listen": nil, "public_url": nil, "tls": {"cert": nil, "key": nil},
	"behind_proxy": nil, "trusted_proxies": nil,
	"oidc":         {"issuer": nil, "client_id": nil, "client_secret_env": nil, "roles_claim": nil, "username_claim": nil, "scopes": nil},
	"roles":        {RoleViewer: nil, RoleOperator: nil, RoleApprover: nil},
	"idle_timeout": nil, "absolute_timeout": nil, "session_key_env": nil,
}

// parseConsole reads the console section; nil when it is absent.
func parseConsole(c *checker, f field, root string) *Console {
	if !f.present() {
		return nil
	}
	m := c.mapping(f, consoleKeys)
	if m == nil {
		return nil
	}
	cs := &Console{
		Listen:          c.listen(m["listen"], defaultConsoleListen),
		IdleTimeout:     c.duration(m["idle_timeout"], defaultConsoleIdle, false),
		AbsoluteTimeout: c.duration(m["absolute_timeout"], defaultConsoleAbsolute, false),
		Roles:           map[string][]string{},
	}
	if raw, ok := c.required(f, m, "public_url"); ok {
		if u, err := parseWebhookURL(raw); err != nil {
			c.errorf(valLine(m["public_url"]), "%s: %v", m["public_url"].path, err)
		} else {
			cs.PublicURL = raw
			if u.Scheme == "http" {
				c.inClear(m["public_url"], raw, "session cookies", "the URL's host", u.Hostname())
			}
		}
	}
	if t := m["tls"]; t.present() {
		tm := c.mapping(t, consoleKeys["tls"])
		if tm != nil {
			cs.TLS = &ConsoleTLS{}
			if _, ok := c.need(t, tm, "cert"); ok {
				cs.TLS.Cert = c.existing(tm["cert"], root)
			}
			if _, ok := c.need(t, tm, "key"); ok {
				cs.TLS.Key = c.existing(tm["key"], root)
			}
		}
	}
	if c.boolean(m["behind_proxy"], false) {
		for _, it := range c.nonEmptyList(f, m, "trusted_proxies") {
			p, err := parsePrefix(it.val)
			if err != nil {
				c.errorf(it.line, "%s: %v", it.path, err)
				continue
			}
			cs.TrustedProxies = append(cs.TrustedProxies, p)
		}
	} else if m["trusted_proxies"].present() {
		c.errorf(m["trusted_proxies"].key.Line, "%s is set but behind_proxy is not true", m["trusted_proxies"].path)
	}
	checkConsoleListener(c, m, cs)
	cs.OIDC = parseOIDC(c, f, m)
	roles := c.mapping(m["roles"], consoleKeys["roles"])
	for _, role := range []string{RoleViewer, RoleOperator, RoleApprover} {
		items, _ := c.list(roles[role])
		for _, it := range items {
			if it.val == "" {
				c.errorf(it.line, "%s must not be empty", it.path)
				continue
			}
			cs.Roles[role] = append(cs.Roles[role], it.val)
		}
	}
	if len(cs.Roles) == 0 && roles != nil {
		c.errorf(resolve(f.val).Line, "console.roles grants no role to anyone: map at least one of viewer, operator, approver to values of the roles claim")
	}
	cs.SessionKeyEnv = c.checked(m["session_key_env"], checkEnvName)
	if cs.AbsoluteTimeout < cs.IdleTimeout {
		c.errorf(valLine(m["absolute_timeout"]), "console.absolute_timeout (%s) must be at least idle_timeout (%s)", FormatDays(cs.AbsoluteTimeout), FormatDays(cs.IdleTimeout))
	}
	return cs
}

// checkConsoleListener refuses a console that would take sign-ins in
// clear from the network: a listener beyond this machine needs its own
// certificate or a trusted proxy in front.
func checkConsoleListener(c *checker, m map[string]field, cs *Console) {
	if cs.TLS != nil && cs.TrustedProxies != nil {
		c.errorf(valLine(m["tls"]), "console: set tls or behind_proxy, not both")
	}
	host, _, err := net.SplitHostPort(cs.Listen)
	if err != nil || IsLoopback(host) || cs.TLS != nil || cs.TrustedProxies != nil {
		return
	}
	line := valLine(m["listen"])
	if !m["listen"].present() {
		line = resolve(m["public_url"].val).Line
	}
	c.errorf(line, "console.listen %q is not a loopback address: set console.tls (cert and key) or behind_proxy: true with trusted_proxies, so that sign-ins never cross the network in clear", cs.Listen)
}

func parseOIDC(c *checker, console field, m map[string]field) OIDC {
	var o OIDC
	f, ok := c.need(console, m, "oidc")
	om := c.mapping(f, consoleKeys["oidc"])
	if !ok || om == nil {
		return o
	}
	if raw, ok := c.required(f, om, "issuer"); ok {
		if u, err := parseWebhookURL(raw); err != nil {
			c.errorf(valLine(om["issuer"]), "%s: %v", om["issuer"].path, err)
		} else {
			o.Issuer = raw
			if u.Scheme == "http" {
				c.inClear(om["issuer"], raw, "tokens", "the URL's host", u.Hostname())
			}
		}
	}
	o.ClientID, _ = c.required(f, om, "client_id")
	o.ClientSecretEnv = c.checked(om["client_secret_env"], checkEnvName)
	o.RolesClaim, _ = c.str(om["roles_claim"])
	o.RolesClaim = cmp.Or(o.RolesClaim, defaultRolesClaim)
	o.UsernameClaim, _ = c.str(om["username_claim"])
	o.UsernameClaim = cmp.Or(o.UsernameClaim, defaultUsernameClaim)
	o.Scopes = defaultScopes
	if items, set := c.list(om["scopes"]); set {
		o.Scopes = []string{}
		for _, it := range items {
			if it.val == "" || it.val == "openid" || strings.ContainsAny(it.val, " \"") {
				c.errorf(it.line, "%s: %q is not a scope to add (openid is always asked for)", it.path, it.val)
				continue
			}
			o.Scopes = append(o.Scopes, it.val)
		}
	}
	return o
}
