package console

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
)

// provider is the identity provider, discovered on first use: a provider
// down when airlock starts must not stop the gateway.
type provider struct {
	mu       sync.Mutex
	oauth    *oauth2.Config
	verifier *oidc.IDTokenVerifier
}

func (c *Console) provider(ctx context.Context) (*oauth2.Config, *oidc.IDTokenVerifier, error) {
	c.idp.mu.Lock()
	defer c.idp.mu.Unlock()
	if c.idp.oauth != nil {
		return c.idp.oauth, c.idp.verifier, nil
	}
	// The provider keeps the context for fetching keys later.
	p, err := oidc.NewProvider(oidc.ClientContext(context.WithoutCancel(ctx), c.client), c.cfg.OIDC.Issuer)
	if err != nil {
		return nil, nil, fmt.Errorf("discover the identity provider: %w", err)
	}
	c.idp.oauth = &oauth2.Config{
		ClientID:     c.cfg.OIDC.ClientID,
		ClientSecret: c.clientSecret,
		Endpoint:     p.Endpoint(),
		RedirectURL:  strings.TrimSuffix(c.cfg.PublicURL, "/") + "/auth/callback",
		Scopes:       append([]string{oidc.ScopeOpenID}, c.cfg.OIDC.Scopes...),
	}
	c.idp.verifier = p.Verifier(&oidc.Config{ClientID: c.cfg.OIDC.ClientID, Now: c.now})
	return c.idp.oauth, c.idp.verifier, nil
}

// signIn sends the browser to the identity provider, with a fresh state,
// nonce and PKCE verifier kept in a sealed cookie for the way back.
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	oauth, _, err := c.provider(r.Context())
	if err != nil {
		c.fail(w, r, http.StatusBadGateway, "The identity provider cannot be reached; try again shortly.", err)
		return
	}
	l := login{State: randomToken(), Nonce: randomToken(), Verifier: oauth2.GenerateVerifier(),
		Next: localPath(r.URL.Query().Get("next")), Expires: c.now().Add(loginWindow).Unix()}
	if err := c.seal.setCookie(w, loginCookie, l, loginWindow); err != nil {
		c.fail(w, r, http.StatusInternalServerError, "", err)
		return
	}
	http.Redirect(w, r, oauth.AuthCodeURL(l.State, oidc.Nonce(l.Nonce), oauth2.S256ChallengeOption(l.Verifier)), http.StatusFound)
}

// callback completes a sign-in: the state must match the one this
// browser left with, the ID token must verify (issuer, audience, expiry,
// signature) and carry the nonce, and the person must hold a role.
func (c *Console) callback(w http.ResponseWriter, r *http.Request) {
	var l login
	ck, err := r.Cookie(loginCookie)
	if err == nil {
		err = c.seal.open(loginCookie, ck.Value, &l)
	}
	clearCookie(w, loginCookie) // one use
	q := r.URL.Query()
	switch {
	case err != nil || c.now().Unix() > l.Expires:
		c.refuse(w, r, "no sign-in in progress, or it took too long", "")
		return
	case subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(l.State)) != 1:
		c.refuse(w, r, "the state does not match the sign-in this browser started", "")
		return
	case q.Get("error") != "":
		c.refuse(w, r, "the identity provider refused: "+q.Get("error"), "")
		return
	}
	s, err := c.exchange(r.Context(), q.Get("code"), l)
	if err != nil {
		c.refuse(w, r, err.Error(), "")
		return
	}
	if len(s.Roles) == 0 {
		c.audit(r, ledger.Event{Kind: "console.signin_refused", Actor: actorOf(s).Name,
			Detail: map[string]string{"reason": "no console role"}})
		c.render(w, r, http.StatusForbidden, "norole", view{Title: "No access", Data: s})
		return
	}
	now := c.now().Unix()
	s.CSRF, s.Issued, s.Seen = randomToken(), now, now
	if err := c.startSession(w, s); err != nil {
		c.fail(w, r, http.StatusInternalServerError, "", err)
		return
	}
	c.audit(r, ledger.Event{Kind: "console.signin", Actor: actorOf(s).Name,
		Detail: map[string]string{"person": s.Person, "roles": strings.Join(s.Roles, ",")}})
	http.Redirect(w, r, l.Next, http.StatusSeeOther)
}

// exchange trades the code for tokens and returns who the ID token names.
func (c *Console) exchange(ctx context.Context, code string, l login) (*session, error) {
	oauth, verifier, err := c.provider(ctx)
	if err != nil {
		return nil, err
	}
	ctx = oidc.ClientContext(ctx, c.client)
	tok, err := oauth.Exchange(ctx, code, oauth2.VerifierOption(l.Verifier))
	if err != nil {
		return nil, fmt.Errorf("the code exchange failed: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, errors.New("the identity provider returned no ID token")
	}
	idt, err := verifier.Verify(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("the ID token does not verify: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(l.Nonce)) != 1 {
		return nil, errors.New("the ID token's nonce does not match the sign-in")
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, fmt.Errorf("the ID token's claims: %w", err)
	}
	s := &session{Subject: idt.Subject}
	s.Email, _ = claims["email"].(string)
	s.Person, _ = claims[c.cfg.OIDC.UsernameClaim].(string)
	if s.Person == "" {
		s.Person = idt.Subject
	}
	s.Roles = rolesOf(claims[c.cfg.OIDC.RolesClaim], c.cfg.Roles)
	return s, nil
}

// rolesOf maps the values of the roles claim (a list of strings, or one
// string) to console roles, in a fixed order.
func rolesOf(claim any, mapping map[string][]string) []string {
	var values []string
	switch v := claim.(type) {
	case string:
		values = []string{v}
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok {
				values = append(values, s)
			}
		}
	}
	var roles []string
	for _, role := range []string{config.RoleViewer, config.RoleOperator, config.RoleApprover} {
		if slices.ContainsFunc(mapping[role], func(g string) bool { return slices.Contains(values, g) }) {
			roles = append(roles, role)
		}
	}
	return roles
}

// signOut ends the session (a POST with the CSRF token, so that no other
// site can sign anyone out).
func (c *Console) signOut(w http.ResponseWriter, r *http.Request, s *session) {
	clearCookie(w, sessionCookie)
	c.audit(r, ledger.Event{Kind: "console.signout", Actor: actorOf(s).Name})
	c.render(w, r, http.StatusOK, "signedout", view{Title: "Signed out"})
}

// refuse answers a sign-in that failed, and audits why.
func (c *Console) refuse(w http.ResponseWriter, r *http.Request, why, actor string) {
	c.audit(r, ledger.Event{Kind: "console.signin_refused", Actor: actor, Detail: map[string]string{"reason": why}})
	c.log.Warn("console sign-in refused", "reason", why, "remote_ip", c.clientIP(r))
	c.render(w, r, http.StatusUnauthorized, "error", view{Title: "Sign-in failed",
		Data: "The sign-in could not be completed. Start again from the sign-in page."})
}

// localPath returns p if it is a path on this site, else "/": a sign-in
// must not bounce a browser elsewhere.
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
		return "/"
	}
	return p
}
