package integration

import (
	"context"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/testpeer"
)

// chrome is one headless Chromium tab, with the cookies of one person.
type chrome struct {
	t     *testing.T
	ctx   context.Context
	shots string // where screenshots go
}

func newChrome(t *testing.T) *chrome {
	t.Helper()
	bin := testpeer.Require(t, "chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		// The console's certificate is from the test's own CA.
		chromedp.IgnoreCertErrors, chromedp.WindowSize(1280, 900))
	alloc, cancelAlloc := chromedp.NewExecAllocator(t.Context(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	// The browser starts with the first action on ctx itself; actions on
	// contexts derived from it after that (do's, text's) may time out
	// without closing it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	// AIRLOCK_SCREENSHOTS=1 refreshes the README's pictures.
	shots := t.TempDir()
	if os.Getenv("AIRLOCK_SCREENSHOTS") != "" {
		shots = filepath.Join("..", "..", "docs", "console")
	}
	return &chrome{t: t, ctx: ctx, shots: shots}
}

func (c *chrome) do(actions ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	// A selector that matches nothing would wait for ever.
	ctx, cancel := context.WithTimeout(c.ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		c.t.Fatal(err)
	}
}

// text waits until the page's main part says want, and returns it.
func (c *chrome) text(want string) string {
	c.t.Helper()
	var got string
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		got, _ = chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS("main")))
		cancel()
		if strings.Contains(got, want) {
			return got
		}
		if time.Now().After(deadline) {
			loc, _ := chromedp.Run(c.ctx, chromedp.Location())
			c.t.Fatalf("%s does not say %q:\n%s", loc, want, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// at waits until the page's address holds want.
func (c *chrome) at(want string) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		loc, err := chromedp.Run(c.ctx, chromedp.Location())
		if err == nil && strings.Contains(loc, want) {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the browser is at %q (%v), not at an address with %q", loc, err, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *chrome) screenshot(name string) {
	c.t.Helper()
	png, err := chromedp.Run(c.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.shots, name+".png"), png, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// TestConsoleBrowser: in headless Chromium, the writer of a file signs in
// through the provider, sees the overview, searches for the file, fails to
// approve it, rejects another with a <script> reason (shown inert), and
// signs out; a second person signs in and approves it; it is delivered,
// and the audit trail names both.
func TestConsoleBrowser(t *testing.T) {
	t.Parallel()
	c := newChrome(t)
	exports, target := t.TempDir(), t.TempDir()
	g := startConsoleGateway(t, exports, dataset{name: "proj", bucket: target, approval: 1})
	want := exported{}
	want.put(t, toDir(t, exports), "proj/extract.csv", 100)
	want.put(t, toDir(t, exports), "proj/wrong.csv", 100)
	held := map[string]ledger.Transfer{}
	eventually(t, 30*time.Second, "both files to await approval", func() bool {
		for _, tr := range g.egressRows(t, "proj") {
			if tr.State == ledger.AwaitingApproval {
				held[tr.Path] = tr
			}
		}
		return len(held) == 2
	})
	extract, wrong := held["/extract.csv"], held["/wrong.csv"]
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}

	g.idp.QueueUser(&mockoidc.MockUser{Subject: "sub-w", Email: "writer@example.org", PreferredUsername: me.Username,
		Groups: []string{"stewards", "analysts"}})
	c.do(chromedp.Navigate(g.base + "/")) // to the provider and back
	c.text("Needing action")
	if loc, err := chromedp.Run(c.ctx, chromedp.Location()); err != nil || loc != g.base+"/" {
		t.Fatalf("after sign-in: %q, %v", loc, err)
	}
	c.screenshot("overview")
	c.do(chromedp.Navigate(g.base + "/transfers"))
	c.do(chromedp.SetValue(chromedp.CSS(`input[name="name"]`), "extract"), chromedp.Click(chromedp.CSS(`form.search button`)))
	c.at("name=extract") // the results, not the list the search was made from
	if page := c.text(extract.ID); strings.Contains(page, wrong.ID) {
		t.Errorf("the search for extract found wrong.csv too:\n%s", page)
	}
	c.screenshot("transfers")
	c.do(chromedp.Navigate(g.base + "/transfers/" + extract.ID))
	c.text("Timeline")
	c.screenshot("transfer")
	c.do(chromedp.Click(chromedp.CSS(`form[action$="/approve"] button`)))
	c.text("someone else must approve it")
	c.screenshot("own-approval-refused")

	const reason = `<script>document.title='pwned'</script>`
	c.do(chromedp.Navigate(g.base + "/approvals"))
	c.text(wrong.ID)
	c.screenshot("approvals")
	c.do(chromedp.SetValue(chromedp.CSS(`form[action="/approvals/`+wrong.ID+`/reject"] input[name="reason"]`), reason),
		chromedp.Click(chromedp.CSS(`form[action="/approvals/`+wrong.ID+`/reject"] button`)))
	c.text("Rejected: nothing was sent.")
	c.do(chromedp.Navigate(g.base + "/transfers/" + wrong.ID))
	if page := c.text("approval.rejected"); !strings.Contains(page, reason) {
		t.Errorf("the reason is not shown as written:\n%s", page)
	}
	if title, err := chromedp.Run(c.ctx, chromedp.Title()); err != nil || title == "pwned" {
		t.Errorf("the reason ran as script: title %q, %v", title, err)
	}
	c.do(chromedp.Navigate(g.base + "/batches"))
	c.text("No batches")
	c.do(chromedp.Click(chromedp.CSS(`form.who button`)))
	c.text("You are signed out")

	g.idp.QueueUser(&mockoidc.MockUser{Subject: "sub-b", Email: "bob@example.org", PreferredUsername: "bob",
		Groups: []string{"stewards"}})
	c.do(chromedp.Navigate(g.base + "/approvals"))
	c.text(extract.ID)
	c.do(chromedp.Click(chromedp.CSS(`form[action="/approvals/` + extract.ID + `/approve"] button`)))
	c.text("it will be sent")
	c.screenshot("approved")
	g.waitSent(t, "proj", exported{"proj/extract.csv": want["proj/extract.csv"]}, 30*time.Second)

	actors := map[string]string{}
	for _, ev := range g.eventsOf(extract.ID) {
		actors[ev.Kind] = ev.Actor
	}
	if actors["approval.refused"] != "oidc:sub-w <writer@example.org>" || actors["approval.granted"] != "oidc:sub-b <bob@example.org>" {
		t.Errorf("the audit trail: %v", actors)
	}
	g.auditVerifies(t)
}
