package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/ledger/ledgertest"
	"github.com/airlock-gw/airlock/internal/notify"
	"github.com/airlock-gw/airlock/internal/testpeer"
)

// batchCalls are the webhook's calls about batches, decoded, by event.
func (w *webhookReceiver) batchCalls(t *testing.T) map[string][]notify.WebhookBatchBody {
	t.Helper()
	out := map[string][]notify.WebhookBatchBody{}
	for _, c := range w.received() {
		if !strings.HasPrefix(c.Event, "batch.") {
			continue
		}
		var b notify.WebhookBatchBody
		if err := json.Unmarshal(c.Body, &b); err != nil || !c.SignatureOK || b.Event != c.Event {
			t.Fatalf("webhook call %s: %v (signature ok: %v)\n%s", c.Event, err, c.SignatureOK, c.Body)
		}
		out[c.Event] = append(out[c.Event], b)
	}
	return out
}

// TestRouteBatchOutcomesAreToldOnce: two routes watch one prefix. One
// delivers its batch: batch.delivered is emailed to its notify recipients
// and the operators and posted to the webhook, with the manifest. The
// other holds each file for approval and one is rejected: its batch goes
// failed (batches list says so), can no longer be approved, batch.failed naming the rejected file is
// emailed to its recipients and the operators and posted. A restart and a kill -9 tell
// nothing again, and each outcome is audited once.
func TestRouteBatchOutcomesAreToldOnce(t *testing.T) {
	t.Parallel()
	s3srv := startVersity(t, "src")
	box, hook := startMailbox(t), startWebhookReceiver(t)
	g := newGateway(t, gatewayOpts{env: s3srv.Env(), mail: box, webhook: hook, extra: "watch:\n  every: 300ms\n"})
	writeFile(t, filepath.Join(g.dir, "suppliers", ".keep"), "")
	toDW, toAudit := t.TempDir(), t.TempDir()
	flagRoute(t, g, s3srv, "to-dw", toDW+"/", "notify: [\"dw@example.org\"]\nrecipient: \"Data Warehouse\"\n")
	flagRoute(t, g, s3srv, "to-audit", toAudit+"/", "approval: 1\nnotify: [\"audit@example.org\"]\n")
	putBatch(t, s3srv, 3)
	g.start()

	delivered := box.waitMail(t, "dw@example.org", "batch of to-dw delivered (3 files)", "Data Warehouse", ".manifest.json")
	if rcpts := strings.SplitN(delivered, "\n\n", 2)[0]; rcpts != "dw@example.org,"+operatorEmail {
		t.Errorf("batch.delivered told to %s; want the route's recipient and the operators", rcpts)
	}

	var held []ledger.Transfer
	eventually(t, time.Minute, "to-audit's 3 files to await approval", func() bool {
		held = held[:0]
		for _, tr := range g.egressRows(t, "to-audit") {
			if tr.State == ledger.AwaitingApproval {
				held = append(held, tr)
			}
		}
		return len(held) == 3
	})
	rejected := held[2]
	if _, errOut, err := g.airlock("approvals", "reject", rejected.ID, "--reason", "wrong extract"); err != nil {
		t.Fatalf("reject: %v\n%s", err, errOut)
	}
	failed := box.waitMail(t, "audit@example.org", "batch of to-audit failed (3 files)", rejected.Path, "rejected by operator:")
	if rcpts := strings.SplitN(failed, "\n\n", 2)[0]; !strings.Contains(rcpts, operatorEmail) {
		t.Errorf("batch.failed not told to the operators: recipients %s", rcpts)
	}
	out, errOut, err := g.airlock("batches", "list", "--state", "failed")
	if err != nil || !strings.Contains(out, " failed ") || !strings.Contains(out, "to-audit") || strings.Contains(out, "to-dw") {
		t.Errorf("batches list --state failed: %v %s\n%s; want to-audit's batch alone", err, errOut, out)
	}

	var calls map[string][]notify.WebhookBatchBody
	eventually(t, 30*time.Second, "batch.delivered and batch.failed at the webhook", func() bool {
		calls = hook.batchCalls(t)
		return len(calls[notify.EventBatchDelivered]) > 0 && len(calls[notify.EventBatchFailed]) > 0
	})
	var bytes int64 // of the 3 files, read by either route
	for _, tr := range g.egressRows(t, "to-dw") {
		bytes += tr.Size
	}
	d, f := calls[notify.EventBatchDelivered][0].Batch, calls[notify.EventBatchFailed][0].Batch
	if d.Route != "to-dw" || d.Files != 3 || d.Delivered != 3 || d.Bytes != bytes || !strings.HasSuffix(d.Manifest, d.ID+".manifest.json") ||
		d.Recipient != "Data Warehouse" || len(d.Failures) != 0 {
		t.Errorf("batch.delivered posted %+v; want to-dw's 3 files, %d bytes and its manifest", d, bytes)
	}
	if f.Route != "to-audit" || f.Files != 3 || f.Bytes != bytes || len(f.Failures) != 1 ||
		f.Failures[0].TransferID != rejected.ID || f.Failures[0].State != string(ledger.Rejected) {
		t.Errorf("batch.failed posted %+v; want to-audit's 3 files with the rejected one", f)
	}

	// A batch is approved whole: with a member rejected, the rest can be
	// approved neither alone nor as the batch, and nothing is sent.
	if _, errOut, err := g.airlock("approvals", "approve", "--batch", rejected.Batch); err == nil || !strings.Contains(errOut, "state is rejected") {
		t.Errorf("approving the failed batch: %v\n%s; want it refused, naming the rejected member", err, errOut)
	}
	if got := objects(t, toAudit); len(got) != 0 {
		t.Errorf("the failed batch sent %v", got)
	}
	g.stop()
	g.start()
	time.Sleep(2 * time.Second)
	g.kill()
	g.start()
	time.Sleep(3 * time.Second) // polls, reconciling and job runs of two fresh processes
	for to, want := range map[string]int{"dw@example.org": 1, "audit@example.org": 1, operatorEmail: 2} {
		n := 0
		for _, msg := range box.mailsTo(to) {
			if strings.Contains(msg, "airlock: batch of ") {
				n++
			}
		}
		if n != want {
			t.Errorf("%d batch emails to %s; want %d", n, to, want)
		}
	}
	calls = hook.batchCalls(t)
	if len(calls[notify.EventBatchDelivered]) != 1 || len(calls[notify.EventBatchFailed]) != 1 {
		t.Errorf("webhook batch calls: %d delivered, %d failed; want 1 each",
			len(calls[notify.EventBatchDelivered]), len(calls[notify.EventBatchFailed]))
	}
	kinds := map[string]int{}
	for _, ev := range g.events() {
		if ev.Detail["batch"] != "" {
			kinds[ev.Kind]++
		}
	}
	if kinds["batch.delivered"] != 1 || kinds["batch.failed"] != 1 {
		t.Errorf("batch audit events %v; want batch.delivered and batch.failed once each", kinds)
	}
	bs := g.waitBatches(t, 2, nil)
	for _, b := range bs {
		if want := map[string]string{"to-dw": ledger.BatchDelivered, "to-audit": ledger.BatchFailed}[b.Route]; b.State != want {
			t.Errorf("batch of %s is %s; want %s", b.Route, b.State, want)
		}
	}
	g.auditVerifies(t)
}

// TestRouteHurriedByNotification: a route polled once an hour sends its
// batch within seconds of the flag when versitygw's bucket notifications
// reach /events/s3.
func TestRouteHurriedByNotification(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gatewayOpts{extra: "watch:\n  every: 1h\n"})
	// versitygw posts a test event as it starts, before airlock listens:
	// a relay answers that one and passes the rest on.
	relay := serveLocal(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Post("http://"+g.httpAddr+"/events/s3", "application/json", r.Body)
		if err != nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
	}))
	s3srv := &s3Server{testpeer.StartVersityArgs(t, []string{"--event-webhook-url", relay}, "src")}
	g.env = append(g.env, s3srv.Env()...)
	writeFile(t, filepath.Join(g.dir, "suppliers", ".keep"), "")
	dest := t.TempDir()
	flagRoute(t, g, s3srv, "hourly", dest+"/", "")
	g.start()
	polls := func(trigger string) float64 { return g.metric(`airlock_watch_polls_total{trigger="` + trigger + `"}`) }
	eventually(t, 30*time.Second, "the first polls (the export area's and the route's)", func() bool { return polls("timer") >= 2 })
	start := time.Now()
	want := putBatch(t, s3srv, 5)
	bs := g.waitBatches(t, 1, func(b ledger.Batch) bool { return b.State == ledger.BatchDelivered })
	took := time.Since(start)
	t.Logf("batch delivered %s after the flag was written (polls every hour)", took.Round(time.Millisecond))
	if took > 30*time.Second {
		t.Errorf("batch delivered %s after the flag; want well under the hour between polls", took)
	}
	assertBatchAt(t, dest, want, bs[0])
	if polls("kick") < 1 || polls("timer") != 2 {
		t.Errorf("polls: %v kicked, %v on the timer; want kicks, and the timer's first two alone", polls("kick"), polls("timer"))
	}
}

// prefixRoute writes routes/<name>.yaml: a flag route from prefix of
// bucket src on s3srv to the directory dest.
func prefixRoute(t *testing.T, g *gateway, s3srv *s3Server, name, prefix, dest string) {
	t.Helper()
	writeFile(t, filepath.Join(g.dir, "routes", name+".yaml"), fmt.Sprintf("name: %s\nsource: %q\nflag: \"pipeline_success.flag\"\ndestination: %q\n",
		name, testpeer.S3URL(s3srv.Addr, "src", prefix), dest+"/"))
}

// flagUnder writes a file under prefix of bucket src, then the flag of
// the run'th version: its size tells the versions apart, which S3's
// modification times, to the second, may not.
func flagUnder(t *testing.T, s3srv *s3Server, prefix string, run int) {
	t.Helper()
	put := toBucket(t, s3srv, "src")
	put(prefix+"data.csv", []byte("a,b\n1,2\n"))
	put(prefix+"pipeline_success.flag", []byte(strings.Repeat("x", run)))
}

// reloadEvent waits for a config.reload of the routes after seq whose
// detail has match, and returns it.
func (g *gateway) reloadEvent(t *testing.T, after int64, match map[string]string) ledger.Event {
	t.Helper()
	var ev ledger.Event
	eventually(t, 20*time.Second, fmt.Sprintf("a routes reload with %v", match), func() bool {
		var ok bool
		ev, ok = g.findEvent(after, "config.reload", match)
		return ok && ev.Detail["routes_dir"] != ""
	})
	return ev
}

// waitDelivered waits for n batches, all delivered, read from the ledger:
// the CLI refuses to run while a route file is bad.
func (g *gateway) waitDelivered(t *testing.T, n int) {
	t.Helper()
	eventually(t, time.Minute, fmt.Sprintf("%d batches delivered", n), func() bool {
		l := g.openLedger(t)
		defer l.Close()
		bs, err := l.Batches(t.Context(), ledger.BatchFilter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range bs {
			if b.State != ledger.BatchDelivered {
				return false
			}
		}
		return len(bs) == n
	})
}

// TestRoutesReload: route files are re-read on change and on SIGHUP: a
// route added is watched, a changed one sends where it now says, a
// removed one is watched no more, each audited and logged with what
// changed; a bad file is refused with its file and line while the routes
// in force keep sending.
func TestRoutesReload(t *testing.T) {
	t.Parallel()
	s3srv := startVersity(t, "src")
	g := newGateway(t, gatewayOpts{env: s3srv.Env(), extra: "watch:\n  every: 300ms\n"})
	writeFile(t, filepath.Join(g.dir, "suppliers", ".keep"), "")
	destA, destB, destA2 := t.TempDir(), t.TempDir(), t.TempDir()
	prefixRoute(t, g, s3srv, "first", "a/", destA)
	g.start()
	flagUnder(t, s3srv, "a/", 1)
	g.waitDelivered(t, 1)

	seq := g.lastSeq()
	prefixRoute(t, g, s3srv, "second", "b/", destB)
	g.reloadEvent(t, seq, map[string]string{"added": "second", "routes": "2"})
	flagUnder(t, s3srv, "b/", 1)
	g.waitDelivered(t, 2)
	if got := objects(t, destB); len(got) != 2 { // data.csv and the manifest
		t.Fatalf("the added route sent %v; want data.csv and its manifest", got)
	}

	seq = g.lastSeq()
	writeFile(t, filepath.Join(g.dir, "routes", "third.yaml"), "name: third\nsource: \"src/\"\nflg: \"x\"\ndestination: \"out/\"\n")
	refused := g.reloadEvent(t, seq, map[string]string{"error": "third.yaml:3:"})
	eventually(t, 10*time.Second, "the refused reload to be logged", func() bool {
		return strings.Contains(g.log.String(), "route reload refused") && strings.Contains(g.log.String(), "third.yaml:3:")
	})
	t.Logf("refused: %s", refused.Detail["error"])
	flagUnder(t, s3srv, "a/", 2) // a re-run: the routes in force still send
	g.waitDelivered(t, 3)
	if err := os.Remove(filepath.Join(g.dir, "routes", "third.yaml")); err != nil {
		t.Fatal(err)
	}

	seq = g.lastSeq()
	prefixRoute(t, g, s3srv, "first", "a/", destA2)
	g.reloadEvent(t, seq, map[string]string{"changed": "first", "routes": "2"})
	flagUnder(t, s3srv, "a/", 3)
	g.waitDelivered(t, 4)
	if got := objects(t, destA2); len(got) != 2 {
		t.Errorf("the changed route sent %v to its new destination; want data.csv and its manifest", got)
	}

	seq = g.lastSeq()
	if err := g.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	g.reloadEvent(t, seq, map[string]string{"routes": "2"})

	seq = g.lastSeq()
	if err := os.Remove(filepath.Join(g.dir, "routes", "second.yaml")); err != nil {
		t.Fatal(err)
	}
	g.reloadEvent(t, seq, map[string]string{"removed": "second", "routes": "1"})
	flagUnder(t, s3srv, "b/", 2)
	time.Sleep(3 * time.Second) // ten polls, had the route still been watched
	if bs := g.waitBatches(t, 4, nil); len(bs) != 4 {
		t.Errorf("%d batches after the route was removed and its flag rewritten; want still 4", len(bs))
	}
	if !strings.Contains(g.log.String(), "routes reloaded") {
		t.Error("no log line of the routes reloaded")
	}
	g.auditVerifies(t)
}

// TestRouteBatchOutcomesToldOnceByTwoNodes: two nodes on one Postgres
// both watch the same two routes and run their jobs. Every member of one
// batch is rejected, each rejection queueing the settling of the batch on
// whichever node takes it; the other batch is delivered by both nodes'
// workers. Each outcome is emailed, posted and audited once.
func TestRouteBatchOutcomesToldOnceByTwoNodes(t *testing.T) {
	t.Parallel()
	s3srv := startVersity(t, "landing", "quarantine", "src")
	c := &cluster{db: ledgertest.Postgres(t), s3: s3srv, dest: t.TempDir(), key: newClientKey(t)}
	box, hook := startMailbox(t), startWebhookReceiver(t)
	toDW, toAudit := t.TempDir(), t.TempDir()
	var nodes []*gateway
	for _, name := range []string{"node-a", "node-b"} {
		g := c.node(t, name, gatewayOpts{mail: box, webhook: hook, extra: "watch:\n  every: 300ms\n"})
		flagRoute(t, g, s3srv, "to-dw", toDW+"/", "notify: [\"dw@example.org\"]\n")
		flagRoute(t, g, s3srv, "to-audit", toAudit+"/", "approval: 1\nnotify: [\"audit@example.org\"]\n")
		nodes = append(nodes, g)
	}
	const files = 20
	putBatch(t, s3srv, files)
	for _, g := range nodes {
		g.start()
	}
	a := nodes[0]
	var held []ledger.Transfer
	eventually(t, time.Minute, "to-audit's files to await approval", func() bool {
		held = held[:0]
		for _, tr := range a.egressRows(t, "to-audit") {
			if tr.State == ledger.AwaitingApproval {
				held = append(held, tr)
			}
		}
		return len(held) == files
	})
	for i, tr := range held {
		if _, errOut, err := nodes[i%2].airlock("approvals", "reject", tr.ID, "--reason", "not today"); err != nil {
			t.Fatalf("reject: %v\n%s", err, errOut)
		}
	}
	box.waitMail(t, "dw@example.org", "batch of to-dw delivered")
	box.waitMail(t, "audit@example.org", "batch of to-audit failed")
	eventually(t, 30*time.Second, "both batch events at the webhook", func() bool {
		calls := hook.batchCalls(t)
		return len(calls[notify.EventBatchDelivered]) > 0 && len(calls[notify.EventBatchFailed]) > 0
	})
	time.Sleep(3 * time.Second) // time for a second telling, were there one
	for _, to := range []string{"dw@example.org", "audit@example.org"} {
		if n := len(box.mailsTo(to)); n != 1 {
			t.Errorf("%d emails to %s; want 1", n, to)
		}
	}
	calls := hook.batchCalls(t)
	if len(calls[notify.EventBatchDelivered]) != 1 || len(calls[notify.EventBatchFailed]) != 1 {
		t.Errorf("webhook batch calls: %d delivered, %d failed; want 1 each",
			len(calls[notify.EventBatchDelivered]), len(calls[notify.EventBatchFailed]))
	}
	// Told at the first rejection: the members rejected by then.
	if f := calls[notify.EventBatchFailed][0].Batch; len(f.Failures) < 1 || f.Failures[0].State != string(ledger.Rejected) {
		t.Errorf("batch.failed names failures %+v; want the rejected", f.Failures)
	}
	kinds := map[string]int{}
	for _, ev := range a.events() {
		if ev.Detail["batch"] != "" {
			kinds[ev.Kind]++
		}
	}
	if kinds["batch.delivered"] != 1 || kinds["batch.failed"] != 1 {
		t.Errorf("batch audit events %v; want batch.delivered and batch.failed once each", kinds)
	}
	a.auditVerifies(t)
}
