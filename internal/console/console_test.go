package console

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
)

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	f := newFixture(t, config.Console{PublicURL: "https://airlock.example"})
	for _, target := range []string{"/", "/transfers", "/api/transfers", "/static/console.css", "/nope"} {
		w := f.do(t, "GET", target, f.cookie(t, viewer), nil, nil)
		h := w.Header()
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe-inline") ||
			!strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: Content-Security-Policy %q", target, csp)
		}
		if h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: X-Frame-Options %q, X-Content-Type-Options %q", target, h.Get("X-Frame-Options"), h.Get("X-Content-Type-Options"))
		}
	}
	// No page has inline script, or any script at all.
	for _, target := range []string{"/", "/transfers", "/approvals", "/batches"} {
		if body := f.do(t, "GET", target, f.cookie(t, approver), nil, nil).Body.String(); strings.Contains(body, "<script") {
			t.Errorf("%s has a script:\n%s", target, body)
		}
	}
}

func TestSession(t *testing.T) {
	t.Parallel()
	f := newFixture(t, config.Console{PublicURL: "https://airlock.example"})
	good := f.cookie(t, viewer)
	tampered := *good
	raw := []byte(tampered.Value)
	raw[len(raw)/2] ^= 'A' ^ 'B'
	tampered.Value = string(raw)
	renamed := *good // sealed as the session, offered as something else
	renamed.Name = loginCookie
	idle := f.cookie(t, session{Subject: "s", Person: "p", Roles: []string{config.RoleViewer},
		Seen: time.Now().Add(-31 * time.Minute).Unix()})
	old := f.cookie(t, session{Subject: "s", Person: "p", Roles: []string{config.RoleViewer},
		Issued: time.Now().Add(-13 * time.Hour).Unix()})
	tests := []struct {
		name   string
		cookie *http.Cookie
		want   int
	}{
		{"live", good, http.StatusOK},
		{"none", nil, http.StatusSeeOther},
		{"tampered", &tampered, http.StatusSeeOther},
		{"under another name", &renamed, http.StatusSeeOther},
		{"idle too long", idle, http.StatusSeeOther},
		{"past its absolute timeout", old, http.StatusSeeOther},
	}
	for _, tt := range tests {
		w := f.do(t, "GET", "/transfers?state=failed", tt.cookie, nil, nil)
		if w.Code != tt.want {
			t.Errorf("%s: status %d, want %d", tt.name, w.Code, tt.want)
		}
		if tt.want == http.StatusSeeOther {
			if loc := w.Header().Get("Location"); loc != "/auth/login?next=%2Ftransfers%3Fstate%3Dfailed" {
				t.Errorf("%s: redirected to %q", tt.name, loc)
			}
			if api := f.do(t, "GET", "/api/transfers", tt.cookie, nil, nil); api.Code != http.StatusUnauthorized {
				t.Errorf("%s: the API answered %d, want 401", tt.name, api.Code)
			}
		}
	}
	// A session in use moves its idle clock on; then it outlives the idle timeout.
	f.offset.Store(int64(20 * time.Minute))
	w := f.do(t, "GET", "/", good, nil, nil)
	var moved *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == sessionCookie {
			moved = c
		}
	}
	if moved == nil || !moved.Secure || !moved.HttpOnly || moved.SameSite != http.SameSiteLaxMode {
		t.Fatalf("no Secure, HttpOnly, SameSite=Lax cookie sent again: %+v", moved)
	}
	f.offset.Store(int64(45 * time.Minute))
	if w := f.do(t, "GET", "/", moved, nil, nil); w.Code != http.StatusOK {
		t.Errorf("a session used 25 minutes ago: %d", w.Code)
	}
	if w := f.do(t, "GET", "/", good, nil, nil); w.Code != http.StatusSeeOther {
		t.Errorf("a session last used 45 minutes ago: %d", w.Code)
	}
}

func TestCSRFAndRoles(t *testing.T) {
	t.Parallel()
	f := newFixture(t, config.Console{PublicURL: "https://airlock.example"})
	tr := f.held(t, "walt", "/a.csv")
	approve := "/approvals/" + tr.ID + "/approve"
	tests := []struct {
		name   string
		target string
		s      session
		form   url.Values
		header http.Header
		want   int
	}{
		{"no token", approve, approver, url.Values{}, nil, http.StatusForbidden},
		{"the wrong token", approve, approver, url.Values{"csrf": {"token-vera"}}, nil, http.StatusForbidden},
		{"a viewer", approve, viewer, url.Values{"csrf": {"token-vera"}}, nil, http.StatusForbidden},
		{"a viewer through the API", "/api" + approve, viewer, url.Values{}, http.Header{"X-Csrf-Token": {"token-vera"}}, http.StatusForbidden},
		{"no role", approve, session{Subject: "x", Person: "x"}, url.Values{"csrf": {"token-x"}}, nil, http.StatusForbidden},
		{"a reject without a reason", "/approvals/" + tr.ID + "/reject", approver, url.Values{"csrf": {"token-ann"}}, nil, http.StatusBadRequest},
	}
	for _, tt := range tests {
		if w := f.do(t, "POST", tt.target, f.cookie(t, tt.s), tt.form, tt.header); w.Code != tt.want {
			t.Errorf("%s: status %d, want %d: %s", tt.name, w.Code, tt.want, w.Body)
		}
	}
	if got, _ := f.led.Get(t.Context(), tr.ID); got.State != ledger.AwaitingApproval {
		t.Fatalf("refused requests changed the transfer: %s", got.State)
	}
	w := f.do(t, "POST", "/api"+approve, f.cookie(t, approver), url.Values{}, http.Header{"X-Csrf-Token": {"token-ann"}})
	var out outcome
	if err := json.Unmarshal(w.Body.Bytes(), &out); w.Code != http.StatusOK || err != nil || out.Transfer.State != ledger.Delivering {
		t.Fatalf("the approver's approval: %d %s", w.Code, w.Body)
	}
}

// TestBatchApproval: the held members of a flag batch are approved
// whole, by a button on each of their rows.
func TestBatchApproval(t *testing.T) {
	t.Parallel()
	f := newFixture(t, config.Console{PublicURL: "https://airlock.example"})
	mtime := time.Now()
	var members []ledger.Transfer
	for _, p := range []string{"/a.csv", "/b.csv"} {
		members = append(members, ledger.NewTransfer(ledger.Transfer{Direction: ledger.Egress, Supplier: "walt", Route: "proj", Path: p,
			State: ledger.Queued, LandingKey: "day" + p, MTime: &mtime}))
	}
	b, err := f.led.OpenBatch(t.Context(), ledger.Batch{Route: "proj", Trigger: "day/flag", TriggerVersion: "0:1"}, members, nil)
	if err != nil {
		t.Fatal(err)
	}
	held, err := f.led.List(t.Context(), ledger.Filter{Batch: b.ID})
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range held {
		if _, err := f.led.Advance(t.Context(), tr.ID, []ledger.State{ledger.Queued}, ledger.AwaitingApproval, ledger.Change{}, ledger.Event{}); err != nil {
			t.Fatal(err)
		}
	}
	page := f.do(t, "GET", "/approvals", f.cookie(t, approver), nil, nil).Body.String()
	if strings.Count(page, `action="/batches/`+b.ID+`/approve"`) != 2 || strings.Contains(page, `action="/approvals/`+held[0].ID+`/approve"`) {
		t.Errorf("approvals page: want each member's row to approve the batch, not the file alone\n%s", page)
	}
	w := f.do(t, "POST", "/batches/"+b.ID+"/approve", f.cookie(t, writer), url.Values{"csrf": {"token-walt"}}, nil)
	if w.Code != http.StatusForbidden {
		t.Errorf("the writer's approval of the batch: %d %s", w.Code, w.Body)
	}
	w = f.do(t, "POST", "/batches/"+b.ID+"/approve", f.cookie(t, approver), url.Values{"csrf": {"token-ann"}}, nil)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "its 2 files will be sent") {
		t.Errorf("the batch's approval: %d %s", w.Code, w.Body)
	}
	if granted := f.events(t, "approval.granted"); len(granted) != 2 || granted[0].Detail["batch"] != b.ID {
		t.Errorf("approvals audited: %+v", granted)
	}
}

func TestFourEyes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, config.Console{PublicURL: "https://airlock.example"})
	mine, other := f.held(t, "walt", "/mine.csv"), f.held(t, "walt", "/other.csv")
	w := f.do(t, "POST", "/approvals/"+mine.ID+"/approve", f.cookie(t, writer), url.Values{"csrf": {"token-walt"}}, nil)
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "someone else must approve it") {
		t.Errorf("the writer's own approval: %d %s", w.Code, w.Body)
	}
	w = f.do(t, "POST", "/api/approvals/"+mine.ID+"/approve", f.cookie(t, writer), nil, http.Header{"X-Csrf-Token": {"token-walt"}})
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), `"error"`) {
		t.Errorf("the writer's own approval through the API: %d %s", w.Code, w.Body)
	}
	refused := f.events(t, "approval.refused")
	if len(refused) != 2 || refused[0].Actor != "oidc:s-walt <walt@example.org>" || refused[0].TransferID != mine.ID || refused[0].RemoteIP != "127.0.0.1" {
		t.Errorf("refusals audited: %+v", refused)
	}
	w = f.do(t, "POST", "/approvals/"+other.ID+"/reject", f.cookie(t, approver), url.Values{"csrf": {"token-ann"}, "reason": {"wrong extract"}}, nil)
	if w.Code != http.StatusOK {
		t.Errorf("reject: %d %s", w.Code, w.Body)
	}
	w = f.do(t, "POST", "/approvals/"+mine.ID+"/approve", f.cookie(t, approver), url.Values{"csrf": {"token-ann"}}, nil)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "it will be sent") {
		t.Errorf("another person's approval: %d %s", w.Code, w.Body)
	}
	granted, rejected := f.events(t, "approval.granted"), f.events(t, "approval.rejected")
	if len(granted) != 1 || granted[0].Actor != "oidc:s-ann <ann@example.org>" || granted[0].TransferID != mine.ID {
		t.Errorf("approvals audited: %+v", granted)
	}
	if len(rejected) != 1 || rejected[0].Detail["reason"] != "wrong extract" || rejected[0].Actor != "oidc:s-ann <ann@example.org>" {
		t.Errorf("rejections audited: %+v", rejected)
	}
}

func TestPagesAndSearch(t *testing.T) {
	t.Parallel()
	f := newFixture(t, config.Console{PublicURL: "https://airlock.example"})
	evil := f.held(t, "walt", "/<script>alert(1)</script>.csv")
	f.held(t, "walt", "/b.csv")
	ck := f.cookie(t, viewer)
	for _, target := range []string{"/", "/transfers", "/transfers/" + evil.ID, "/approvals", "/transfers?name=script"} {
		w := f.do(t, "GET", target, ck, nil, nil)
		if w.Code != http.StatusOK || strings.Contains(w.Body.String(), "<script>alert") || !strings.Contains(w.Body.String(), "&lt;script&gt;alert(1)&lt;/script&gt;.csv") {
			t.Errorf("%s: %d, the file name not shown inert:\n%s", target, w.Code, w.Body)
		}
	}
	if w := f.do(t, "GET", "/transfers/"+evil.ID, ck, nil, nil); strings.Contains(w.Body.String(), `action="/approvals/`) {
		t.Error("a viewer is offered the approval form")
	}
	tests := []struct {
		query string
		want  int
	}{
		{"", 2}, {"name=b.csv", 1}, {"state=awaiting_approval&direction=egress&supplier=walt&route=proj", 2},
		{"state=delivered", 0}, {"from=2000-01-01&to=2000-01-02", 0}, {"sha256=00", 0},
	}
	for _, tt := range tests {
		w := f.do(t, "GET", "/api/transfers?"+tt.query, ck, nil, nil)
		var s search
		if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil || w.Code != http.StatusOK || len(s.Transfers) != tt.want || s.Problem != "" {
			t.Errorf("?%s: %d transfers (%v, %d), want %d: %s", tt.query, len(s.Transfers), err, w.Code, tt.want, w.Body)
		}
	}
	w := f.do(t, "GET", "/api/transfers?state=bogus", ck, nil, nil)
	if !strings.Contains(w.Body.String(), `"problem":"unknown state`) {
		t.Errorf("a bad state: %s", w.Body)
	}
	var ov overview
	if w := f.do(t, "GET", "/api/overview", ck, nil, nil); json.Unmarshal(w.Body.Bytes(), &ov) != nil || len(ov.NeedsAction) != 2 ||
		len(ov.Counts) != 1 || ov.Counts[0].Transfers != 2 {
		t.Errorf("overview: %s", w.Body)
	}
	var d detail
	if w := f.do(t, "GET", "/api/transfers/"+evil.ID, ck, nil, nil); json.Unmarshal(w.Body.Bytes(), &d) != nil || len(d.Events) != 2 {
		t.Errorf("a transfer's timeline: %s", w.Body)
	}
	if w := f.do(t, "GET", "/transfers/nope", ck, nil, nil); w.Code != http.StatusNotFound {
		t.Errorf("an unknown transfer: %d", w.Code)
	}
}

func TestPaging(t *testing.T) {
	t.Parallel()
	f := newFixture(t, config.Console{PublicURL: "https://airlock.example"})
	for i := range pageSize + 3 {
		f.held(t, "walt", "/f"+strings.Repeat("x", i)+".csv")
	}
	seen := map[string]bool{}
	next, pages := "", 0
	for {
		w := f.do(t, "GET", "/api/transfers?"+next, f.cookie(t, viewer), nil, nil)
		var s search
		if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil {
			t.Fatal(err)
		}
		pages++
		for _, tr := range s.Transfers {
			if seen[tr.ID] {
				t.Fatalf("%s on two pages", tr.ID)
			}
			seen[tr.ID] = true
		}
		if next = s.Next; next == "" {
			break
		}
	}
	if pages != 2 || len(seen) != pageSize+3 {
		t.Errorf("%d pages, %d transfers; want 2 and %d", pages, len(seen), pageSize+3)
	}
}

func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	f := newFixture(t, config.Console{PublicURL: "https://airlock.example",
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	if w := f.do(t, "GET", "/", f.cookie(t, viewer), nil, nil); w.Code != http.StatusForbidden {
		t.Errorf("a peer that is not a trusted proxy: %d", w.Code)
	}
	r := httptestRequest(t, "10.1.2.3:5555", "192.0.2.7")
	if got := f.c.clientIP(r); got != "192.0.2.7" {
		t.Errorf("client behind the proxy: %q", got)
	}
}

func TestRolesOf(t *testing.T) {
	t.Parallel()
	mapping := map[string][]string{config.RoleViewer: {"analysts"}, config.RoleOperator: {"ops"}, config.RoleApprover: {"stewards", "leads"}}
	tests := []struct {
		name  string
		claim any
		want  string
	}{
		{"none", nil, ""},
		{"unmapped", []any{"sales"}, ""},
		{"one string", "ops", "operator"},
		{"a list", []any{"leads", "analysts", 7}, "viewer,approver"},
		{"all", []any{"stewards", "ops", "analysts"}, "viewer,operator,approver"},
		{"not strings", map[string]any{"ops": true}, ""},
	}
	for _, tt := range tests {
		if got := strings.Join(rolesOf(tt.claim, mapping), ","); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestLocalPath(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"/transfers?x=1": "/transfers?x=1", "": "/", "https://evil.example/": "/",
		"//evil.example": "/", "/\\evil.example": "/"} {
		if got := localPath(in); got != want {
			t.Errorf("localPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestQuarantinePage(t *testing.T) {
	t.Parallel()
	f := newFixture(t, config.Console{PublicURL: "https://airlock.example"})
	held, gone := "q/acme/bad.exe", ""
	var ids []string
	for _, dest := range []*string{&held, &gone} {
		tr, err := f.led.Record(t.Context(), ledger.NewTransfer(ledger.Transfer{Supplier: "acme", Path: "/bad.exe", Node: "n1"}),
			ledger.Event{}, ledger.Quarantined, ledger.Change{Destination: dest, ScanResult: ptr("Eicar-Signature FOUND")}, ledger.Event{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, tr.ID)
	}
	var list []ledger.Transfer
	if w := f.do(t, "GET", "/api/quarantine", f.cookie(t, viewer), nil, nil); json.Unmarshal(w.Body.Bytes(), &list) != nil ||
		len(list) != 1 || list[0].ID != ids[0] {
		t.Errorf("quarantine: %s", w.Body)
	}
	if page := f.do(t, "GET", "/quarantine", f.cookie(t, viewer), nil, nil).Body.String(); strings.Contains(page, "/release") ||
		!strings.Contains(page, "Eicar-Signature FOUND") {
		t.Errorf("a viewer's quarantine page:\n%s", page)
	}
	operator := session{Subject: "s-otto", Person: "otto", Roles: []string{config.RoleOperator}}
	if page := f.do(t, "GET", "/quarantine", f.cookie(t, operator), nil, nil).Body.String(); !strings.Contains(page, "/quarantine/"+ids[0]+"/release") {
		t.Errorf("an operator's quarantine page has no release form:\n%s", page)
	}
	release := "/quarantine/" + ids[0] + "/release"
	if w := f.do(t, "POST", release, f.cookie(t, approver), url.Values{"csrf": {"token-ann"}, "reason": {"false positive"}}, nil); w.Code != http.StatusForbidden {
		t.Errorf("an approver's release: %d", w.Code)
	}
	if w := f.do(t, "POST", release, f.cookie(t, operator), url.Values{"csrf": {"token-otto"}}, nil); w.Code != http.StatusBadRequest {
		t.Errorf("a release without a reason: %d", w.Code)
	}
}

// TestReleaseFourEyes: an operator's release of a quarantined file is a
// request, listed on the approvals page; the requester's own approval is
// refused (403, audited) and another approver's releases the file.
func TestReleaseFourEyes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, config.Console{PublicURL: "https://airlock.example"})
	dest := "q/acme/bad.exe"
	tr, err := f.led.Record(t.Context(), ledger.NewTransfer(ledger.Transfer{Supplier: "acme", Path: "/bad.exe", Node: "n1"}),
		ledger.Event{}, ledger.Quarantined, ledger.Change{Destination: &dest, ScanResult: ptr("Eicar-Signature FOUND")}, ledger.Event{})
	if err != nil {
		t.Fatal(err)
	}
	// walt is both operator and approver: he may ask, not approve his own.
	walt := session{Subject: "s-walt", Email: "walt@example.org", Person: "walt", Roles: []string{config.RoleOperator, config.RoleApprover}}
	w := f.do(t, "POST", "/quarantine/"+tr.ID+"/release", f.cookie(t, walt), url.Values{"csrf": {"token-walt"}, "reason": {"false positive"}}, nil)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "Release requested") {
		t.Fatalf("release request: %d %s", w.Code, w.Body)
	}
	if page := f.do(t, "GET", "/quarantine", f.cookie(t, walt), nil, nil).Body.String(); !strings.Contains(page, "Release requested by walt") ||
		strings.Contains(page, "/quarantine/"+tr.ID+"/release") {
		t.Errorf("quarantine page: want the pending request, not a second release form\n%s", page)
	}
	page := f.do(t, "GET", "/approvals", f.cookie(t, approver), nil, nil).Body.String()
	if !strings.Contains(page, `action="/approvals/`+tr.ID+`/approve"`) || !strings.Contains(page, "requested by walt") {
		t.Errorf("approvals page lists no release request:\n%s", page)
	}
	var list []held
	if w := f.do(t, "GET", "/api/approvals", f.cookie(t, approver), nil, nil); json.Unmarshal(w.Body.Bytes(), &list) != nil ||
		len(list) != 1 || list[0].Release == nil || list[0].Release.Requester != "walt" {
		t.Errorf("/api/approvals: %s", w.Body)
	}
	w = f.do(t, "POST", "/api/approvals/"+tr.ID+"/approve", f.cookie(t, walt), nil, http.Header{"X-Csrf-Token": {"token-walt"}})
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "someone else must approve it") {
		t.Errorf("the requester's own approval: %d %s", w.Code, w.Body)
	}
	if refused := f.events(t, "approval.refused"); len(refused) != 1 || refused[0].TransferID != tr.ID || refused[0].Detail["person"] != "walt" {
		t.Errorf("refusal audited: %+v", refused)
	}
	w = f.do(t, "POST", "/approvals/"+tr.ID+"/approve", f.cookie(t, approver), url.Values{"csrf": {"token-ann"}}, nil)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "released from quarantine") {
		t.Errorf("another person's approval: %d %s", w.Code, w.Body)
	}
	if got, err := f.led.Get(t.Context(), tr.ID); err != nil || got.State != ledger.Received {
		t.Errorf("after the approval: %s, %v; want received", got.State, err)
	}
	if done := f.events(t, "quarantine.release"); len(done) != 1 || done[0].Detail["approvers"] != "ann" || done[0].Detail["requester"] != "walt" {
		t.Errorf("release audited: %+v", done)
	}
}

func ptr[T any](v T) *T { return &v }

func TestAuditPage(t *testing.T) {
	t.Parallel()
	f := newFixture(t, config.Console{PublicURL: "https://airlock.example"})
	tr := f.held(t, "walt", "/a.csv")
	for range pageSize {
		if _, err := f.led.Append(t.Context(), ledger.Event{Kind: "auth.ok", Actor: "acme"}); err != nil {
			t.Fatal(err)
		}
	}
	ck := f.cookie(t, viewer)
	var res auditSearch
	if w := f.do(t, "GET", "/api/audit?transfer="+tr.ID, ck, nil, nil); json.Unmarshal(w.Body.Bytes(), &res) != nil || len(res.Events) != 2 || res.Next != "" {
		t.Errorf("a transfer's events: %s", w.Body)
	}
	seen := 0
	for next := "kind=auth."; ; next = res.Next {
		res = auditSearch{}
		if w := f.do(t, "GET", "/api/audit?"+next, ck, nil, nil); json.Unmarshal(w.Body.Bytes(), &res) != nil {
			t.Fatalf("audit: %s", w.Body)
		}
		seen += len(res.Events)
		if res.Next == "" {
			break
		}
	}
	if seen != pageSize {
		t.Errorf("%d auth events over the pages, want %d", seen, pageSize)
	}
	if page := f.do(t, "GET", "/audit?actor=acme", ck, nil, nil).Body.String(); !strings.Contains(page, "auth.ok") || strings.Contains(page, "transfer.queued") {
		t.Errorf("the audit page:\n%s", page)
	}
}

func TestBare(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"postgres://restore:s3cret@db.internal:5432/tre?sslmode=verify-full": "postgres://db.internal:5432/tre",
		"s3://bucket/prefix?region=eu-west-2&endpoint=http://x":              "s3://bucket/prefix",
		"/srv/airlock/delivered":         "/srv/airlock/delivered",
		"https://receiver:8091/DA/#frag": "https://receiver:8091/DA/",
	} {
		if got := bare(in); got != want {
			t.Errorf("bare(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConfigPage(t *testing.T) {
	t.Parallel()
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " acme laptop"
	soon := time.Now().UTC().Add(10 * 24 * time.Hour).Format(time.DateOnly)
	dir := t.TempDir()
	for name, body := range map[string]string{
		"airlock.yaml": "node: n\n",
		"suppliers/acme.yaml": fmt.Sprintf("name: acme\nemail: data@acme.example\nallowed_ips: [\"192.0.2.0/24\"]\n"+
			"ssh_keys: [{key: %q, expires: %q}]\ndestination:\n  url: \"s3://land/acme?region=eu-west-2&endpoint=http://minio:9000\"\n", key, soon),
		"datasets/proj.yaml": "name: proj\npaperwork: \"https://docs.example/dpia/proj\"\nusers: [alpha_user]\nbucket: \"s3://target/proj?region=eu-west-2\"\napproval: 1\n",
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Load(filepath.Join(dir, "airlock.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, config.Console{PublicURL: "https://airlock.example"})
	f.c.conf = Tree{Suppliers: func() *config.Suppliers { return cfg.Suppliers }, Datasets: func() *config.Datasets { return cfg.Datasets }}
	w := f.do(t, "GET", "/api/config", f.cookie(t, viewer), nil, nil)
	var tv treeView
	if err := json.Unmarshal(w.Body.Bytes(), &tv); err != nil || len(tv.Suppliers) != 1 || len(tv.Datasets) != 1 {
		t.Fatalf("config: %v %s", err, w.Body)
	}
	s, d := tv.Suppliers[0], tv.Datasets[0]
	if s.Destination != "s3://land/acme" || len(s.Keys) != 1 || s.Keys[0].Status != "expiring" || s.Keys[0].Comment != "acme laptop" {
		t.Errorf("supplier: %+v", s)
	}
	if d.Kind != "push" || d.Target != "s3://target/proj" || d.Approval != 1 {
		t.Errorf("dataset: %+v", d)
	}
	if page := f.do(t, "GET", "/config", f.cookie(t, viewer), nil, nil).Body.String(); strings.Contains(page, "minio") || !strings.Contains(page, "expiring") {
		t.Errorf("the configuration page shows a URL's parameters, or no expiry:\n%s", page)
	}

	// The overview names the key due, and the dependency down.
	f.c.health = []Check{{Name: "database", Ping: f.led.Ping}, {Name: "scanner", Ping: func(context.Context) error { return errors.New("clamd: refused") }}}
	var ov overview
	if w := f.do(t, "GET", "/api/overview", f.cookie(t, viewer), nil, nil); json.Unmarshal(w.Body.Bytes(), &ov) != nil ||
		len(ov.KeysDue) != 1 || ov.KeysDue[0].Supplier != "acme" ||
		len(ov.Health) != 2 || !ov.Health[0].Up || ov.Health[1].Up {
		t.Errorf("overview: %s", w.Body)
	}
	if page := f.do(t, "GET", "/", f.cookie(t, viewer), nil, nil).Body.String(); !strings.Contains(page, "scanner: DOWN") || strings.Contains(page, "refused") {
		t.Errorf("the overview's health:\n%s", page)
	}
}
