package integration

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/testpeer"
)

// The web console against the real binary, signing in at a real OIDC
// provider (mockoidc, in this process, on 127.0.0.1) through the full
// authorization code flow, as a browser would with its cookie jar.

// consoleGateway is a push gateway with a console over TLS.
type consoleGateway struct {
	*gateway
	idp  *mockoidc.MockOIDC
	base string // the console's URL
	ca   *x509.CertPool
}

func startConsoleGateway(t *testing.T, exports string, ds ...dataset) *consoleGateway {
	t.Helper()
	cg, o := newConsole(t)
	cg.gateway = startPushGateway(t, o, exports, ds...)
	return cg.listening(t)
}

// newConsole starts the identity provider and returns the console's
// options for a gateway: its section of airlock.yaml and the client
// secret in the environment.
func newConsole(t *testing.T) (*consoleGateway, gatewayOpts) {
	t.Helper()
	idp, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = idp.Shutdown() })
	ca := testpeer.NewCA(t, "console")
	pair := ca.Server("console")
	addr := testpeer.FreeAddr(t)
	base := "https://" + addr
	const secretEnv = "AIRLOCK_TEST_OIDC_SECRET"
	extra := fmt.Sprintf(`console:
  listen: %q
  public_url: %q
  tls: {cert: %q, key: %q}
  oidc: {issuer: %q, client_id: %q, client_secret_env: %s}
  roles: {viewer: [analysts], operator: [ops], approver: [stewards]}
`, addr, base, pair.Cert, pair.Key, idp.Issuer(), idp.ClientID, secretEnv)
	pem, err := os.ReadFile(ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &consoleGateway{idp: idp, base: base, ca: pool}, gatewayOpts{extra: extra, env: []string{secretEnv + "=" + idp.ClientSecret}}
}

// listening waits for the console of the gateway started.
func (cg *consoleGateway) listening(t *testing.T) *consoleGateway {
	t.Helper()
	if err := testpeer.Listening(strings.TrimPrefix(cg.base, "https://"), cg.proc.Exited()); err != nil {
		t.Fatalf("console: %v\n%s", err, cg.logTail(20))
	}
	return cg
}

// browser is one person's cookie jar, signed in as u.
type browser struct {
	t    *testing.T
	c    *http.Client
	base string
	csrf string
}

// signIn drives the code flow from a page that needs a session: the
// console sends the browser to the provider, which sends it back.
func (cg *consoleGateway) signIn(t *testing.T, u *mockoidc.MockUser) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, base: cg.base, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cg.ca}}}}
	cg.idp.QueueUser(u)
	resp, body := b.get("/approvals")
	var hops []string
	for r := resp.Request; r != nil; r = r.Response.Request {
		hops = append(hops, r.URL.Host+r.URL.Path)
		if r.Response == nil {
			break
		}
	}
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/approvals" ||
		!strings.Contains(strings.Join(hops, " "), cg.idp.Server.Addr+mockoidc.AuthorizationEndpoint) ||
		!strings.Contains(strings.Join(hops, " "), "/auth/callback") {
		t.Fatalf("sign-in as %s: %d at %s via %v\n%s", u.PreferredUsername, resp.StatusCode, resp.Request.URL, hops, body)
	}
	var me struct {
		CSRF  string   `json:"csrf_token"`
		Roles []string `json:"roles"`
	}
	b.getJSON("/api/me", &me)
	b.csrf = me.CSRF
	return b
}

func (b *browser) get(path string) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.Get(b.base + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp, string(body)
}

func (b *browser) getJSON(path string, v any) {
	b.t.Helper()
	resp, body := b.get(path)
	if resp.StatusCode != http.StatusOK {
		b.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		b.t.Fatalf("GET %s: %v\n%s", path, err, body)
	}
}

// post submits a form as the page's would, with the CSRF token.
func (b *browser) post(path string, form url.Values) (int, string) {
	b.t.Helper()
	form.Set("csrf", b.csrf)
	resp, err := b.c.PostForm(b.base+path, form)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// TestConsoleFourEyes: the writer of a file held for approval signs in,
// finds it, and is refused when approving it; a second person approves it
// and it is sent; the audit log names both, by their OIDC identities.
func TestConsoleFourEyes(t *testing.T) {
	t.Parallel()
	exports, target := t.TempDir(), t.TempDir()
	g := startConsoleGateway(t, exports, dataset{name: "proj", bucket: target, approval: 1})
	want := exported{}
	want.put(t, toDir(t, exports), "proj/extract.csv", 100)
	var held ledger.Transfer
	eventually(t, 30*time.Second, "the file to await approval", func() bool {
		for _, tr := range g.egressRows(t, "proj") {
			if tr.State == ledger.AwaitingApproval {
				held = tr
				return true
			}
		}
		return false
	})
	// The test writes the file as its OS user: that is the writer.
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if held.Supplier != me.Username {
		t.Fatalf("the writer is %q, want %q", held.Supplier, me.Username)
	}
	writer := g.signIn(t, &mockoidc.MockUser{Subject: "sub-w", Email: "writer@example.org", PreferredUsername: me.Username,
		Groups: []string{"stewards"}})
	if _, page := writer.get("/approvals"); !strings.Contains(page, held.ID) || !strings.Contains(page, "/extract.csv") {
		t.Errorf("the approvals page does not list %s:\n%s", held.ID, page)
	}
	var found struct {
		Transfers []ledger.Transfer `json:"transfers"`
	}
	writer.getJSON("/api/transfers?route=proj&name=extract&state=awaiting_approval", &found)
	if len(found.Transfers) != 1 || found.Transfers[0].ID != held.ID {
		t.Errorf("search: %+v", found.Transfers)
	}
	refusals(t, g, held.ID, writer)
	status, page := writer.post("/approvals/"+held.ID+"/approve", url.Values{})
	if status != http.StatusForbidden || !strings.Contains(page, "someone else must approve it") {
		t.Errorf("the writer's own approval: %d\n%s", status, page)
	}
	time.Sleep(500 * time.Millisecond) // polls and job runs: still nothing sent
	if got := objects(t, target); len(got) != 0 {
		t.Fatalf("sent on the writer's own approval: %v", got)
	}

	steward := g.signIn(t, &mockoidc.MockUser{Subject: "sub-b", Email: "bob@example.org", PreferredUsername: "bob",
		Groups: []string{"stewards"}})
	status, page = steward.post("/approvals/"+held.ID+"/approve", url.Values{})
	if status != http.StatusOK || !strings.Contains(page, "it will be sent") {
		t.Fatalf("the second person's approval: %d\n%s", status, page)
	}
	g.waitSent(t, "proj", want, 30*time.Second)

	var detail struct {
		Approvers []string       `json:"approvers"`
		Events    []ledger.Event `json:"events"`
	}
	steward.getJSON("/api/transfers/"+held.ID, &detail)
	var ov struct {
		Health []struct {
			Name string `json:"name"`
			Up   bool   `json:"up"`
		} `json:"health"`
	}
	steward.getJSON("/api/overview", &ov)
	if len(ov.Health) != 5 {
		t.Errorf("overview health: %+v", ov.Health)
	}
	for _, h := range ov.Health {
		if !h.Up {
			t.Errorf("%s is down", h.Name)
		}
	}
	if len(detail.Approvers) != 1 || detail.Approvers[0] != "bob" {
		t.Errorf("approvers: %v", detail.Approvers)
	}
	kinds := map[string]string{}
	for _, ev := range detail.Events {
		kinds[ev.Kind] = ev.Actor
	}
	if kinds["approval.refused"] != "oidc:sub-w <writer@example.org>" || kinds["approval.granted"] != "oidc:sub-b <bob@example.org>" ||
		kinds["transfer.delivered"] == "" {
		t.Errorf("the transfer's timeline: %v", kinds)
	}
	signins := 0
	for _, ev := range g.events() {
		if ev.Kind == "console.signin" {
			signins++
		}
	}
	if signins != 3 { // the writer, the viewer, the steward
		t.Errorf("%d sign-ins audited, want 3", signins)
	}
	g.auditVerifies(t)
}

// refusals: no session is sent to sign in (and refused by the API); a
// POST without the CSRF token and a viewer's POST are refused.
func refusals(t *testing.T, cg *consoleGateway, id string, signedIn *browser) {
	t.Helper()
	anon := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cg.ca}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for path, want := range map[string]int{"/approvals": http.StatusSeeOther, "/api/transfers": http.StatusUnauthorized} {
		resp, err := anon.Get(cg.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want || want == http.StatusSeeOther && resp.Header.Get("Location") != "/auth/login?next=%2Fapprovals" {
			t.Errorf("GET %s without a session: %d to %q", path, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	resp, err := signedIn.c.PostForm(cg.base+"/approvals/"+id+"/approve", url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a POST without the CSRF token: %d", resp.StatusCode)
	}
	viewer := cg.signIn(t, &mockoidc.MockUser{Subject: "sub-v", Email: "vera@example.org", PreferredUsername: "vera",
		Groups: []string{"analysts"}})
	if status, page := viewer.post("/approvals/"+id+"/approve", url.Values{}); status != http.StatusForbidden ||
		!strings.Contains(page, "needs the approver role") {
		t.Errorf("a viewer's approval: %d\n%s", status, page)
	}
}

// TestConsoleRefusesClearListener: a console on a non-loopback address
// without TLS or a trusted proxy is refused by validate and by serve.
func TestConsoleRefusesClearListener(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gatewayOpts{extra: `console:
  listen: "0.0.0.0:18443"
  public_url: "https://airlock.example"
  oidc: {issuer: "https://login.example/", client_id: airlock}
  roles: {viewer: [analysts]}
`})
	for _, cmd := range []string{"validate", "serve"} {
		out, errOut, err := g.airlock(cmd)
		if err == nil || !strings.Contains(out+errOut, "console.listen \"0.0.0.0:18443\" is not a loopback address") {
			t.Errorf("%s: %v\n%s%s", cmd, err, out, errOut)
		}
	}
}

// TestAuditExportFollow: `audit export --follow --output FILE`, killed
// (SIGKILL) again and again while events are appended in a burst of
// 10,000, and restarted each time, writes every event exactly once, in
// order, as ECS.
func TestAuditExportFollow(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gatewayOpts{})
	if err := os.MkdirAll(filepath.Join(g.dir, "suppliers"), 0o755); err != nil {
		t.Fatal(err)
	}
	l := g.openLedger(t)
	defer l.Close()
	out := filepath.Join(t.TempDir(), "audit.ecs.json")
	lines := func() int {
		b, err := os.ReadFile(out)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		return bytes.Count(b, []byte("\n"))
	}
	logs := &syncBuffer{}
	start := func() *testpeer.Process {
		cmd := exec.Command(airlockBin, "audit", "export", "--follow", "--every", "50ms", "--output", out,
			"--format", "ecs", "--config", g.cfg)
		cmd.Stdout, cmd.Stderr = logs, logs
		return testpeer.Start(t, cmd)
	}
	const rounds, perRound = 4, 2500
	p := start()
	for round := range rounds {
		burst := make(chan error, 1)
		go func() {
			for i := range perRound {
				if _, err := l.Append(t.Context(), ledger.Event{Kind: "connect", Actor: fmt.Sprintf("burst-%d-%d", round, i)}); err != nil {
					burst <- err
					return
				}
			}
			burst <- nil
		}()
		// Killed while it is writing what the burst appends.
		before := lines()
		eventually(t, 30*time.Second, "the export to go on", func() bool {
			select {
			case <-p.Exited():
				t.Fatalf("audit export exited:\n%s", logs)
			default:
			}
			return lines() > before
		})
		p.Kill()
		if err := <-burst; err != nil {
			t.Fatal(err)
		}
		p = start()
	}
	eventually(t, 60*time.Second, "every event exported", func() bool { return lines() >= rounds*perRound })
	time.Sleep(200 * time.Millisecond) // a few polls more: nothing repeated after the end
	p.Stop(10 * time.Second)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	docs := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	if len(docs) != rounds*perRound {
		t.Errorf("%d lines, want %d\n%s", len(docs), rounds*perRound, logs)
	}
	for i, line := range docs {
		var doc struct {
			Timestamp string `json:"@timestamp"`
			Event     struct {
				Sequence int64  `json:"sequence"`
				Action   string `json:"action"`
				ID       string `json:"id"`
			} `json:"event"`
			User struct {
				Name string `json:"name"`
			} `json:"user"`
		}
		if err := json.Unmarshal(line, &doc); err != nil {
			t.Fatalf("line %d: %v: %q", i+1, err, line)
		}
		if doc.Event.Sequence != int64(i+1) || doc.Event.Action != "connect" || doc.Event.ID == "" || doc.Timestamp == "" ||
			!strings.HasPrefix(doc.User.Name, "burst-") {
			t.Fatalf("line %d: %s", i+1, line)
		}
	}
}
