package console

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"
)

// Cookies are sealed with AES-256-GCM: a client can neither read nor
// change one, and one sealed under one name does not open under another.
// The __Host- prefix keeps them to this origin, path / and Secure.
const (
	sessionCookie = "__Host-airlock_session"
	loginCookie   = "__Host-airlock_login"
	// loginWindow is how long a sign-in may take at the identity provider.
	loginWindow = 10 * time.Minute
	// touchEvery is how stale the idle clock may get before a request
	// sends the cookie again: a write per request would cost more.
	touchEvery = time.Minute
)

// session is who is signed in, as the session cookie carries it.
type session struct {
	Subject string   `json:"sub"`
	Email   string   `json:"email,omitempty"`
	Person  string   `json:"person"`
	Roles   []string `json:"roles"`
	CSRF    string   `json:"csrf"`
	Issued  int64    `json:"iat"` // unix seconds
	Seen    int64    `json:"seen"`
}

func (s *session) Has(role string) bool { return slices.Contains(s.Roles, role) }

// login is what a sign-in in progress keeps between leaving for the
// identity provider and coming back.
type login struct {
	State    string `json:"state"`
	Nonce    string `json:"nonce"`
	Verifier string `json:"verifier"`
	Next     string `json:"next"`
	Expires  int64  `json:"exp"`
}

// sealer seals and opens cookie values.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (*sealer, error) {
	if len(key) < 32 {
		return nil, errors.New("the session key must be at least 32 bytes")
	}
	k := sha256.Sum256(append([]byte("airlock console cookies\x00"), key...))
	block, err := aes.NewCipher(k[:])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

func (s *sealer) seal(name string, v any) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, []byte(name))), nil
}

var errBadCookie = errors.New("cookie is not one this console sealed")

func (s *sealer) open(name, value string, v any) error {
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(raw) < s.aead.NonceSize() {
		return errBadCookie
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], []byte(name))
	if err != nil {
		return errBadCookie
	}
	return json.Unmarshal(plain, v)
}

// setCookie sends a sealed cookie that lasts maxAge.
func (s *sealer) setCookie(w http.ResponseWriter, name string, v any, maxAge time.Duration) error {
	val, err := s.seal(name, v)
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: name, Value: val, Path: "/", MaxAge: int(maxAge.Seconds()),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	return nil
}

func clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// errNoSession means the request carries no live session.
var errNoSession = errors.New("no session")

// session returns the request's session, ending it when idle or old, and
// sends the cookie again when its idle clock needs moving.
func (c *Console) session(w http.ResponseWriter, r *http.Request) (*session, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, errNoSession
	}
	var s session
	if err := c.seal.open(sessionCookie, ck.Value, &s); err != nil {
		clearCookie(w, sessionCookie)
		return nil, errNoSession
	}
	now := c.now()
	issued, seen := time.Unix(s.Issued, 0), time.Unix(s.Seen, 0)
	if now.Sub(seen) > c.cfg.IdleTimeout || now.Sub(issued) > c.cfg.AbsoluteTimeout || s.CSRF == "" {
		clearCookie(w, sessionCookie)
		return nil, errNoSession
	}
	if now.Sub(seen) > touchEvery {
		s.Seen = now.Unix()
		if err := c.startSession(w, &s); err != nil {
			return nil, err
		}
	}
	return &s, nil
}

// startSession sends s's cookie, to last until its absolute end.
func (c *Console) startSession(w http.ResponseWriter, s *session) error {
	left := time.Unix(s.Issued, 0).Add(c.cfg.AbsoluteTimeout).Sub(c.now())
	return c.seal.setCookie(w, sessionCookie, s, left)
}

// checkCSRF reports whether a state-changing request carries the
// session's token, in the form or the X-CSRF-Token header.
func checkCSRF(r *http.Request, s *session) bool {
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.CSRF)) == 1
}

// randomToken returns 32 random bytes, base64url.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
