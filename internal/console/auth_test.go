package console

import (
	"crypto"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/airlock-gw/airlock/internal/config"
)

// idp is a console served over TLS in front of mockoidc, a real OIDC
// provider in this process.
type idp struct {
	*fixture
	m    *mockoidc.MockOIDC
	base string
	srv  *httptest.Server
}

func newIDP(t *testing.T) *idp {
	t.Helper()
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	srv := httptest.NewUnstartedServer(nil)
	base := "https://" + srv.Listener.Addr().String()
	f := newFixture(t, config.Console{PublicURL: base, OIDC: config.OIDC{Issuer: m.Issuer(), ClientID: m.ClientID,
		Scopes: []string{"profile", "email", "groups"}}})
	f.c.clientSecret = m.ClientSecret
	srv.Config.Handler = f.c
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &idp{fixture: f, m: m, base: base, srv: srv}
}

// browser is a client with a cookie jar; follow says whether it follows
// redirects.
func (p *idp) browser(t *testing.T, follow bool) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := *p.srv.Client() // a copy: the server hands out one client
	c.Jar = jar
	if !follow {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return &c
}

func user(name string, groups ...string) *mockoidc.MockUser {
	return &mockoidc.MockUser{Subject: "sub-" + name, Email: name + "@example.org", EmailVerified: true,
		PreferredUsername: name, Groups: groups}
}

func get(t *testing.T, c *http.Client, u string) *http.Response {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// TestSignIn drives the code flow end to end: a page asks for sign-in,
// the provider sends the browser back, and the page it asked for shows.
func TestSignIn(t *testing.T) {
	t.Parallel()
	p := newIDP(t)
	p.m.QueueUser(user("ann", "stewards"))
	b := p.browser(t, true)
	resp := get(t, b, p.base+"/transfers?state=failed")
	if resp.StatusCode != http.StatusOK || resp.Request.URL.RequestURI() != "/transfers?state=failed" {
		t.Fatalf("after sign-in: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	signins := p.events(t, "console.signin")
	if len(signins) != 1 || signins[0].Actor != "oidc:sub-ann <ann@example.org>" || signins[0].Detail["roles"] != "approver" ||
		signins[0].Detail["person"] != "ann" {
		t.Errorf("sign-in audited as %+v", signins)
	}
	// The request that left for the provider asked for PKCE with S256.
	nb := p.browser(t, false)
	loc, _ := url.Parse(get(t, nb, p.base+"/auth/login").Header.Get("Location"))
	q := loc.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("nonce") == "" || len(q.Get("state")) < 32 {
		t.Errorf("authorization request: %s", loc)
	}
	// Sign-out needs the CSRF token, and ends the session.
	req, _ := http.NewRequestWithContext(t.Context(), "POST", p.base+"/auth/logout", strings.NewReader(""))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err := b.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("sign-out without the token: %v %v", resp, err)
	}
	csrf := p.meToken(t, b)
	resp, err := b.PostForm(p.base+"/auth/logout", url.Values{"csrf": {csrf}})
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-out: %v %v", resp, err)
	}
	resp.Body.Close()
	if resp := get(t, p.browser(t, false), p.base+"/"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after sign-out: %d", resp.StatusCode)
	}
	if len(p.events(t, "console.signout")) != 1 {
		t.Error("sign-out not audited")
	}
}

func (p *idp) meToken(t *testing.T, b *http.Client) string {
	t.Helper()
	resp, err := b.Get(p.base + "/api/me")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m me
	if err := jsonDecode(resp, &m); err != nil || m.CSRF == "" {
		t.Fatalf("/api/me: %v %+v", err, m)
	}
	return m.CSRF
}

// TestSignInRefused: each forgery or failure of the flow is refused, with
// no session, and audited with why.
func TestSignInRefused(t *testing.T) {
	t.Parallel()
	p := newIDP(t)
	tests := []struct {
		name   string
		user   *mockoidc.MockUser
		before func()
		forge  func(q url.Values) // the authorization request, on its way
		status int
		reason string // in the audit event
	}{
		{name: "forged state", user: user("ann", "stewards"), forge: func(q url.Values) { q.Set("state", "forged") },
			status: http.StatusUnauthorized, reason: "state does not match"},
		{name: "forged nonce", user: user("ann", "stewards"), forge: func(q url.Values) { q.Set("nonce", "forged") },
			status: http.StatusUnauthorized, reason: "nonce does not match"},
		{name: "wrong PKCE challenge", user: user("ann", "stewards"),
			forge:  func(q url.Values) { q.Set("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM") },
			status: http.StatusUnauthorized, reason: "code exchange failed"},
		{name: "expired token", user: user("ann", "stewards"), before: func() { p.m.FastForward(-2 * time.Hour) },
			status: http.StatusUnauthorized, reason: "token is expired"},
		{name: "wrong audience", user: user("ann", "stewards"), before: func() {
			p.c.idp.mu.Lock()
			defer p.c.idp.mu.Unlock()
			p.c.idp.verifier = oidc.NewVerifier(p.m.Issuer(), &oidc.StaticKeySet{PublicKeys: []crypto.PublicKey{p.m.Keypair.PublicKey}},
				&oidc.Config{ClientID: "someone-else"})
		}, status: http.StatusUnauthorized, reason: "expected audience"},
		{name: "no role", user: user("sam", "sales"), status: http.StatusForbidden, reason: "no console role"},
	}
	// In turn: they move the provider's clock and the console's verifier.
	for _, tt := range tests {
		before := len(p.events(t, "console.signin_refused"))
		if _, _, err := p.c.provider(t.Context()); err != nil {
			t.Fatal(err)
		}
		if tt.before != nil {
			tt.before()
		}
		p.m.QueueUser(tt.user)
		b := p.browser(t, false)
		loc, _ := url.Parse(get(t, b, p.base+"/auth/login").Header.Get("Location"))
		if tt.forge != nil {
			q := loc.Query()
			tt.forge(q)
			loc.RawQuery = q.Encode()
		}
		back := get(t, b, loc.String()).Header.Get("Location")
		resp := get(t, b, back)
		if resp.StatusCode != tt.status {
			t.Errorf("%s: status %d, want %d", tt.name, resp.StatusCode, tt.status)
		}
		if get(t, b, p.base+"/").StatusCode != http.StatusSeeOther {
			t.Errorf("%s: a session was started", tt.name)
		}
		refused := p.events(t, "console.signin_refused")
		if len(refused) != before+1 || !strings.Contains(refused[len(refused)-1].Detail["reason"], tt.reason) {
			t.Errorf("%s: audited %+v, want a refusal saying %q", tt.name, refused[before:], tt.reason)
		}
		p.m.FastForward(-p.m.FastForward(0)) // back to now
		p.c.idp.mu.Lock()
		p.c.idp.oauth, p.c.idp.verifier = nil, nil // discovered afresh
		p.c.idp.mu.Unlock()
	}
}
