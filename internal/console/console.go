// Package console is airlock's web console: server-rendered pages (each
// with a JSON twin under /api/) over the ledger, behind an OIDC identity
// provider, on a listener of its own. Reading needs any console role;
// acting needs the role the action names, a CSRF token, and passes
// through the same rules as the CLI (four eyes in the ledger).
package console

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
)

// Ledger is what the console reads, and where it audits sign-ins.
type Ledger interface {
	List(ctx context.Context, f ledger.Filter) ([]ledger.Transfer, error)
	Get(ctx context.Context, id string) (ledger.Transfer, error)
	Events(ctx context.Context, transferID string, limit int) ([]ledger.Event, error)
	Approvers(ctx context.Context, id string) ([]string, error)
	ApproversOf(ctx context.Context, ids []string) (map[string][]string, error)
	ReleaseRequests(ctx context.Context) ([]ledger.ReleaseRequest, error)
	Counts(ctx context.Context, since time.Time) ([]ledger.Count, error)
	Batches(ctx context.Context, f ledger.BatchFilter) ([]ledger.Batch, error)
	GetBatch(ctx context.Context, id string) (ledger.Batch, error)
	SearchEvents(ctx context.Context, f ledger.EventFilter) ([]ledger.Event, error)
	Append(ctx context.Context, ev ledger.Event) (ledger.Event, error)
}

// Operator carries out actions on transfers as one person (see Actor),
// under the same rules as the CLI's (pipeline.Operator).
type Operator interface {
	Approve(ctx context.Context, id string) (ledger.Transfer, int, error)
	ApproveBatch(ctx context.Context, id string) ([]ledger.Transfer, int, error)
	Reject(ctx context.Context, id, reason string) (ledger.Transfer, error)
	Retry(ctx context.Context, id string) (ledger.Transfer, error)
	Release(ctx context.Context, id, reason string, skipScan bool) (ledger.Transfer, error)
	Delete(ctx context.Context, id, reason string) (ledger.Transfer, error)
}

// Check is a dependency the overview pings: the database, the stores,
// the scanner.
type Check struct {
	Name string
	Ping func(context.Context) error
}

// Actor is who acts through the console.
type Actor struct {
	Name   string // in the audit log: "oidc:<subject> <email>"
	Person string // who they are for four eyes: the username claim
}

func actorOf(s *session) Actor {
	name := "oidc:" + s.Subject
	if s.Email != "" {
		name += " <" + s.Email + ">"
	}
	return Actor{Name: name, Person: s.Person}
}

// Options are what New needs.
type Options struct {
	Config  config.Console
	Ledger  Ledger
	Operate func(Actor) Operator
	// Tree is the configuration in force, shown read-only.
	Tree Tree
	// Health are the dependencies the overview says are up or down.
	Health []Check
	// SessionKey seals the cookies (32 bytes or more); nil makes one.
	SessionKey   []byte
	ClientSecret string
	// Client calls the identity provider; nil: one with a 30 s timeout.
	Client *http.Client
	Log    *slog.Logger
	Now    func() time.Time // nil: time.Now
}

// Console serves the console.
type Console struct {
	cfg          config.Console
	led          Ledger
	operate      func(Actor) Operator
	conf         Tree
	health       []Check
	seal         *sealer
	clientSecret string
	client       *http.Client
	log          *slog.Logger
	now          func() time.Time
	idp          provider
	mux          *http.ServeMux
}

// New returns the console described by o.
func New(o Options) (*Console, error) {
	key := o.SessionKey
	if key == nil {
		key = make([]byte, 32)
		rand.Read(key)
	}
	seal, err := newSealer(key)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	c := &Console{cfg: o.Config, led: o.Ledger, operate: o.Operate, conf: o.Tree, health: o.Health, seal: seal, clientSecret: o.ClientSecret,
		client: o.Client, log: o.Log, now: o.Now, mux: http.NewServeMux()}
	if c.client == nil {
		c.client = &http.Client{Timeout: 30 * time.Second}
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.routes()
	return c, nil
}

// Serve serves the console on ln until ctx ends, over TLS when the
// configuration has a certificate.
func (c *Console) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: c, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	done := make(chan error, 1)
	go func() {
		if c.cfg.TLS != nil {
			done <- srv.ServeTLS(ln, c.cfg.TLS.Cert, c.cfg.TLS.Key)
		} else {
			done <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-done:
		return fmt.Errorf("console: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return fmt.Errorf("console shutdown: %w", err)
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("console: %w", err)
	}
	return nil
}

// ServeHTTP sets the security headers of every answer, and refuses peers
// other than the trusted proxies when the console is behind one.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	if strings.HasPrefix(c.cfg.PublicURL, "https://") {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	if c.cfg.TrustedProxies != nil && !c.trusted(peerAddr(r)) {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	c.mux.ServeHTTP(w, r)
}

func peerAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func (c *Console) trusted(a netip.Addr) bool {
	for _, p := range c.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientIP is the browser's address: the peer's, or behind a trusted
// proxy the last address the proxy added to X-Forwarded-For.
func (c *Console) clientIP(r *http.Request) string {
	peer := peerAddr(r)
	if c.cfg.TrustedProxies != nil {
		fwd := r.Header.Values("X-Forwarded-For")
		if len(fwd) > 0 {
			hops := strings.Split(fwd[len(fwd)-1], ",")
			if a, err := netip.ParseAddr(strings.TrimSpace(hops[len(hops)-1])); err == nil {
				return a.Unmap().String()
			}
		}
	}
	if !peer.IsValid() {
		return ""
	}
	return peer.String()
}

// audit appends ev with the request's client address; a failure is
// logged, as the answer has been decided already.
func (c *Console) audit(r *http.Request, ev ledger.Event) {
	ev.RemoteIP = c.clientIP(r)
	if _, err := c.led.Append(r.Context(), ev); err != nil {
		c.log.Error("append audit event", "kind", ev.Kind, "err", err)
	}
}
