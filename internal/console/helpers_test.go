package console

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
)

// fixture is a console over a real ledger, its clock movable.
type fixture struct {
	c      *Console
	led    *ledger.Ledger
	offset atomic.Int64 // added to the clock, in nanoseconds
}

func newFixture(t testing.TB, cfg config.Console) *fixture {
	t.Helper()
	return newFixtureOn(t, "sqlite:"+filepath.Join(t.TempDir(), "airlock.db"), cfg)
}

// newFixtureOn is newFixture on the database dsn.
func newFixtureOn(t testing.TB, dsn string, cfg config.Console) *fixture {
	t.Helper()
	led, err := ledger.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	f := &fixture{led: led}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout, cfg.AbsoluteTimeout = 30*time.Minute, 12*time.Hour
	}
	if cfg.Roles == nil {
		cfg.Roles = map[string][]string{config.RoleViewer: {"analysts"}, config.RoleOperator: {"ops"}, config.RoleApprover: {"stewards"}}
	}
	cfg.OIDC.RolesClaim, cfg.OIDC.UsernameClaim = "groups", "preferred_username"
	f.c, err = New(Options{Config: cfg, Ledger: led, Log: slog.New(slog.DiscardHandler),
		Operate: func(a Actor) Operator { return ledgerOperator{led, a} },
		Now:     func() time.Time { return time.Now().Add(time.Duration(f.offset.Load())) }})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// ledgerOperator approves and rejects straight in the ledger (one
// approval needed), as pipeline.Operator does without the job queue.
type ledgerOperator struct {
	led *ledger.Ledger
	a   Actor
}

func (o ledgerOperator) Approve(ctx context.Context, id string) (ledger.Transfer, int, error) {
	if _, err := o.led.ReleaseRequested(ctx, id); err == nil {
		return o.led.ApproveRelease(ctx, id, o.a.Person, 1, nil, ledger.Event{Actor: o.a.Name})
	}
	return o.led.Approve(ctx, id, o.a.Person, 1, ledger.Change{}, ledger.Event{Actor: o.a.Name})
}

func (o ledgerOperator) ApproveBatch(ctx context.Context, id string) ([]ledger.Transfer, int, error) {
	return o.led.ApproveBatch(ctx, id, o.a.Person, 1, ledger.Change{}, ledger.Event{Actor: o.a.Name})
}

func (o ledgerOperator) Reject(ctx context.Context, id, reason string) (ledger.Transfer, error) {
	if _, err := o.led.ReleaseRequested(ctx, id); err == nil {
		return o.led.RejectRelease(ctx, id, reason, ledger.Event{Actor: o.a.Name})
	}
	return o.led.Advance(ctx, id, []ledger.State{ledger.AwaitingApproval}, ledger.Rejected, ledger.Change{},
		ledger.Event{Kind: "approval.rejected", Actor: o.a.Name, Detail: map[string]string{"reason": reason}})
}

var errNotHere = errors.New("not in these tests")

func (ledgerOperator) Retry(context.Context, string) (ledger.Transfer, error) {
	return ledger.Transfer{}, errNotHere
}

// Release requests the release, as pipeline.Operator does with
// quarantine_release_approvals set.
func (o ledgerOperator) Release(ctx context.Context, id, reason string, skipScan bool) (ledger.Transfer, error) {
	return o.led.RequestRelease(ctx, id, o.a.Person, reason, skipScan, ledger.Event{Actor: o.a.Name})
}

func (ledgerOperator) Delete(context.Context, string, string) (ledger.Transfer, error) {
	return ledger.Transfer{}, errNotHere
}

// held records a transfer written by writer, awaiting approval.
func (f *fixture) held(t *testing.T, writer, path string) ledger.Transfer {
	t.Helper()
	mtime := time.Now()
	tr := ledger.NewTransfer(ledger.Transfer{Direction: ledger.Egress, Supplier: writer, Route: "proj", Path: path,
		State: ledger.Queued, LandingKey: "proj" + path, MTime: &mtime})
	tr, err := f.led.Admit(t.Context(), tr, ledger.Event{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr, err = f.led.Advance(t.Context(), tr.ID, []ledger.State{ledger.Queued}, ledger.AwaitingApproval, ledger.Change{}, ledger.Event{})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// cookie is a session cookie for s, issued and last seen now unless set.
func (f *fixture) cookie(t testing.TB, s session) *http.Cookie {
	t.Helper()
	now := f.c.now().Unix()
	if s.Issued == 0 {
		s.Issued = now
	}
	if s.Seen == 0 {
		s.Seen = now
	}
	if s.CSRF == "" {
		s.CSRF = "token-" + s.Person
	}
	v, err := f.c.seal.seal(sessionCookie, s)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Cookie{Name: sessionCookie, Value: v}
}

var (
	viewer   = session{Subject: "s-vera", Email: "vera@example.org", Person: "vera", Roles: []string{config.RoleViewer}}
	approver = session{Subject: "s-ann", Email: "ann@example.org", Person: "ann", Roles: []string{config.RoleViewer, config.RoleApprover}}
	writer   = session{Subject: "s-walt", Email: "walt@example.org", Person: "walt", Roles: []string{config.RoleApprover}}
)

// do serves one request with cookie (if any) and form (if any: a POST).
func (f *fixture) do(t testing.TB, method, target string, ck *http.Cookie, form url.Values, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	r := httptest.NewRequestWithContext(t.Context(), method, target, body)
	r.RemoteAddr = "127.0.0.1:40000"
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, vs := range header {
		r.Header[k] = vs
	}
	if ck != nil {
		r.AddCookie(ck)
	}
	w := httptest.NewRecorder()
	f.c.ServeHTTP(w, r)
	return w
}

// events are the audit events of kind.
func (f *fixture) events(t *testing.T, kind string) []ledger.Event {
	t.Helper()
	evs, err := f.led.Events(t.Context(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []ledger.Event
	for _, ev := range evs {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

func httptestRequest(t *testing.T, peer, forwarded string) *http.Request {
	t.Helper()
	r := httptest.NewRequestWithContext(t.Context(), "GET", "/", nil)
	r.RemoteAddr = peer
	r.Header.Set("X-Forwarded-For", "203.0.113.9, "+forwarded)
	return r
}

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }
