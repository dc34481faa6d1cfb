package integration

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/testpeer"
)

// Push datasets against the real binary: what users write under
// <exports>/<dataset>/ goes to the dataset's bucket, verified, and leaves
// the export area (unless keep_files).

// dataset is one datasets/<name>.yaml of a test gateway.
type dataset struct {
	name, bucket, kmsKey string
	keep                 bool
	approval             int
}

func (d dataset) yaml() string {
	y := fmt.Sprintf("name: %s\npaperwork: \"https://docs.example/dpia/%s\"\nusers: [\"alpha_user\"]\nbucket: %q\n",
		d.name, d.name, d.bucket)
	if d.kmsKey != "" {
		y += fmt.Sprintf("kms_key: %q\n", d.kmsKey)
	}
	if d.keep {
		y += "keep_files: true\n"
	}
	if d.approval > 0 {
		y += fmt.Sprintf("approval: %d\n", d.approval)
	}
	return y
}

// startPushGateway starts a gateway whose export area is exports, polled
// every 300 ms, with the datasets given.
func startPushGateway(t *testing.T, o gatewayOpts, exports string, ds ...dataset) *gateway {
	t.Helper()
	o.extra += fmt.Sprintf("exports: %q\nwatch:\n  every: 300ms\n", exports)
	g := newGateway(t, o)
	if err := os.MkdirAll(filepath.Join(g.dir, "suppliers"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		writeFile(t, filepath.Join(g.dir, "datasets", d.name+".yaml"), d.yaml())
	}
	g.start()
	return g
}

// exported are the objects a test wrote into the export area, by key.
type exported map[string]string // key → sha256

// put writes n random bytes to key with write.
func (e exported) put(t *testing.T, write func(key string, data []byte), key string, n int) {
	t.Helper()
	data := make([]byte, n)
	rand.Read(data)
	write(key, data)
	sum := sha256.Sum256(data)
	e[key] = hex.EncodeToString(sum[:])
}

// toBucket writes objects into bucket of v with PutObject: an object
// appears only once whole.
func toBucket(t *testing.T, v *s3Server, bucket string) func(key string, data []byte) {
	client := s3Client(t, v.Versity)
	return func(key string, data []byte) {
		t.Helper()
		if _, err := client.PutObject(t.Context(), &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data),
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// toDir writes files into dir.
func toDir(t *testing.T, dir string) func(key string, data []byte) {
	return func(key string, data []byte) {
		t.Helper()
		writeFile(t, filepath.Join(dir, filepath.FromSlash(key)), string(data))
	}
}

// egressRows are the gateway's transfers of route.
func (g *gateway) egressRows(t *testing.T, route string) []ledger.Transfer {
	t.Helper()
	l := g.openLedger(t)
	defer l.Close()
	trs, err := l.List(t.Context(), ledger.Filter{Direction: ledger.Egress, Route: route})
	if err != nil {
		t.Fatal(err)
	}
	return trs
}

// waitSent waits until every key of want under route's prefix has a
// delivered transfer, and fails on one of them that failed.
func (g *gateway) waitSent(t *testing.T, route string, want exported, within time.Duration) []ledger.Transfer {
	t.Helper()
	wanted := map[string]bool{}
	for key := range want {
		if rel, ok := strings.CutPrefix(key, route+"/"); ok {
			wanted["/"+rel] = true
		}
	}
	var trs []ledger.Transfer
	eventually(t, within, fmt.Sprintf("%d files of %s to be sent", len(wanted), route), func() bool {
		trs = g.egressRows(t, route)
		done := 0
		for _, tr := range trs {
			if !wanted[tr.Path] {
				continue
			}
			if tr.State == ledger.Failed || tr.State == ledger.Rejected {
				t.Fatalf("%s %s: %s (%s)\n%s", tr.ID, tr.Path, tr.State, tr.Error, g.logTail(40))
			}
			if tr.State == ledger.Delivered {
				done++
			}
		}
		return done >= len(wanted)
	})
	return trs
}

// assertSent checks that each key of route in want is at the target dir
// once, with its bytes, and that the ledger agrees.
func assertSent(t *testing.T, route string, want exported, trs []ledger.Transfer, targetDir string) {
	t.Helper()
	got := objects(t, targetDir)
	delivered := map[string]int{}
	for _, tr := range trs {
		if tr.State == ledger.Delivered {
			delivered[tr.Path]++
		}
	}
	for key, sum := range want {
		rel, ok := strings.CutPrefix(key, route+"/")
		if !ok {
			continue
		}
		if got[rel] != sum {
			t.Errorf("%s: target holds sha256 %q; want %s", key, got[rel], sum)
		}
		if delivered["/"+rel] != 1 {
			t.Errorf("%s: %d delivered transfers; want exactly 1", key, delivered["/"+rel])
		}
	}
}

// TestPushDataset: 200 files, 0 B to 50 MiB in nested paths, written into
// a dataset's prefix of an S3 export area arrive in the target bucket with
// their sha256 and the dataset's SSE-KMS headers, and leave the export
// area; a keep_files dataset's stay; files under no push dataset stay and
// are reported once each.
func TestPushDataset(t *testing.T) {
	t.Parallel()
	const kmsKey = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	s3 := startVersity(t, "exports", "target")
	proxy := testpeer.StartRecordingProxy(t, s3.Addr)
	exportsURL, put := s3.url("exports"), toBucket(t, s3, "exports")
	want := exported{}
	sizes := []int{0, 1, 4 << 10, 64 << 10, 1 << 20, 50 << 20, 9 << 20, 17 << 20}
	for i := range 200 {
		n := sizes[i%len(sizes)]
		if n > 1<<20 && i >= len(sizes) {
			n = 200 << 10 // the large ones once: the run stays short
		}
		want.put(t, put, fmt.Sprintf("proj/d%d/s%d/f%03d.bin", i%7, i%3, i), n)
	}
	for i := range 3 {
		want.put(t, put, fmt.Sprintf("kept/f%d.csv", i), 1000+i)
	}
	want.put(t, put, "stray/x.csv", 10)
	want.put(t, put, "loose.csv", 10)

	g := startPushGateway(t, gatewayOpts{env: s3.Env()}, exportsURL,
		dataset{name: "proj", bucket: testpeer.S3URL(proxy.Addr, "target", "proj-out"), kmsKey: kmsKey},
		dataset{name: "kept", bucket: testpeer.S3URL(s3.Addr, "target", "kept-out"), keep: true})
	trs := g.waitSent(t, "proj", want, 3*time.Minute)
	assertSent(t, "proj", want, trs, filepath.Join(s3.Root, "target", "proj-out"))
	kept := g.waitSent(t, "kept", want, time.Minute)
	assertSent(t, "kept", want, kept, filepath.Join(s3.Root, "target", "kept-out"))

	left := objects(t, filepath.Join(s3.Root, "exports"))
	for key := range left {
		if strings.HasPrefix(key, "proj/") {
			t.Errorf("%s is still in the export area", key)
		}
	}
	for _, key := range []string{"kept/f0.csv", "kept/f1.csv", "kept/f2.csv", "stray/x.csv", "loose.csv"} {
		if left[key] != want[key] {
			t.Errorf("%s: export area holds %q; want it kept as written", key, left[key])
		}
	}
	creates := 0
	for _, r := range proxy.Requests() {
		writes := r.Method == "PUT" && !r.URL.Query().Has("partNumber") || r.Method == "POST" && r.URL.Query().Has("uploads")
		if !writes || !strings.HasPrefix(r.URL.Path, "/target/proj-out/") {
			continue
		}
		creates++
		if sse, id := r.Header.Get("X-Amz-Server-Side-Encryption"), r.Header.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"); sse != "aws:kms" || id != kmsKey {
			t.Errorf("%s %s went out with SSE %q, key %q; want aws:kms, %s", r.Method, r.URL.Path, sse, id, kmsKey)
		}
	}
	if creates < 200 {
		t.Errorf("%d requests created objects in the target; want at least 200", creates)
	}
	// Reported once each, however many polls saw them.
	time.Sleep(time.Second)
	unrouted := 0
	for _, ev := range g.events() {
		if ev.Kind == "export.unrouted" {
			unrouted++
		}
	}
	if unrouted != 2 {
		t.Errorf("%d export.unrouted events; want 2 (stray/x.csv and loose.csv, once each)", unrouted)
	}
	if n := g.metric(`airlock_export_objects_total{result="unrouted"}`); n != 2 {
		t.Errorf("unrouted objects counted %v; want 2", n)
	}
	out, errOut, err := g.airlock("transfers", "list", "--direction", "egress", "--route", "kept")
	if err != nil || strings.Count(out, "delivered") != 3 {
		t.Errorf("transfers list --route kept: %v %s\n%s", err, errOut, out)
	}
	g.auditVerifies(t)
}

// TestPushCrash: airlock killed (SIGKILL) three times while 300 files are
// being pushed: after the last restart every file is in the target once,
// with its bytes, nothing is left in the export area, and the audit
// chain verifies.
func TestPushCrash(t *testing.T) {
	t.Parallel()
	s3 := startVersity(t, "exports", "target")
	exportsURL, put := s3.url("exports"), toBucket(t, s3, "exports")
	want := exported{}
	for i := range 300 {
		want.put(t, put, fmt.Sprintf("proj/batch%d/f%03d.bin", i%4, i), 16<<10+i*1024)
	}
	g := startPushGateway(t, gatewayOpts{env: s3.Env(), pipeline: "  retry_backoff: 200ms\n  max_backoff: 1s\n"},
		exportsURL, dataset{name: "proj", bucket: testpeer.S3URL(s3.Addr, "target", "out")})
	for kill := range 3 {
		time.Sleep(time.Duration(700+300*kill) * time.Millisecond)
		sent := 0
		for _, tr := range g.egressRows(t, "proj") {
			if tr.State == ledger.Delivered {
				sent++
			}
		}
		if kill == 0 && sent == len(want) {
			t.Fatal("every file was sent before the first kill: the test kills nothing in flight")
		}
		t.Logf("kill %d: %d of %d files sent", kill+1, sent, len(want))
		g.kill()
		g.start()
	}
	trs := g.waitSent(t, "proj", want, 3*time.Minute)
	assertSent(t, "proj", want, trs, filepath.Join(s3.Root, "target", "out"))
	eventually(t, 30*time.Second, "the export area to empty", func() bool {
		return len(objects(t, filepath.Join(s3.Root, "exports"))) == 0
	})
	g.auditVerifies(t)
}

// TestPushTargetDown: the target is down for 30 s; the files are retried
// and delivered once it is back, none lost.
func TestPushTargetDown(t *testing.T) {
	t.Parallel()
	exports := t.TempDir()
	target := startVersity(t, "target")
	// The outage is a gate in front of the target, not the target
	// stopped: a stopped server frees its port for another test's.
	gate := startGate(t, target.Addr)
	gate.down.Store(true)
	g := startPushGateway(t, gatewayOpts{env: target.Env(), pipeline: "  retry_backoff: 1s\n  max_backoff: 4s\n  max_attempts: 100\n"},
		exports, dataset{name: "proj", bucket: testpeer.S3URL(gate.addr, "target", "")})
	want := exported{}
	for i := range 5 {
		want.put(t, toDir(t, exports), fmt.Sprintf("proj/f%d.csv", i), 10<<10)
	}
	eventually(t, 30*time.Second, "the sends to be retried", func() bool {
		return g.metric(`airlock_job_retries_total{kind="egress"}`) >= 3
	})
	time.Sleep(25 * time.Second)
	if got := objects(t, filepath.Join(target.Root, "target")); len(got) != 0 {
		t.Fatalf("sent through a closed gate: %v", got)
	}
	gate.down.Store(false)
	trs := g.waitSent(t, "proj", want, time.Minute)
	assertSent(t, "proj", want, trs, filepath.Join(target.Root, "target"))
	g.auditVerifies(t)
}

// gate passes HTTP requests to a server, or answers 503 to all while down.
type gate struct {
	addr string
	down atomic.Bool
}

func startGate(t *testing.T, target string) *gate {
	t.Helper()
	g := &gate{}
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(&url.URL{Scheme: "http", Host: target})
		r.Out.Host = r.In.Host // the host the client signed
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.down.Load() {
			http.Error(w, "down for the test", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	g.addr = srv.Listener.Addr().String()
	return g
}

// TestPushApproval: with approval: 1 nothing leaves before someone other
// than the writer approves; the writer's own approval is refused; a
// rejection sends and deletes nothing, and is audited.
func TestPushApproval(t *testing.T) {
	t.Parallel()
	exports, target := t.TempDir(), t.TempDir()
	g := startPushGateway(t, gatewayOpts{}, exports, dataset{name: "proj", bucket: target, approval: 1})
	want := exported{}
	want.put(t, toDir(t, exports), "proj/theirs.csv", 100)
	want.put(t, toDir(t, exports), "proj/mine.csv", 100)
	// The test runs as root, the operator of the CLI: "theirs" is
	// written by another user, "mine" by the operator.
	if err := os.Chown(filepath.Join(exports, "proj", "theirs.csv"), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	var held map[string]ledger.Transfer
	eventually(t, 30*time.Second, "both files to await approval", func() bool {
		held = map[string]ledger.Transfer{}
		for _, tr := range g.egressRows(t, "proj") {
			if tr.State == ledger.AwaitingApproval {
				held[tr.Path] = tr
			}
		}
		return len(held) == 2
	})
	time.Sleep(time.Second) // several polls and job runs: still nothing sent
	if got := objects(t, target); len(got) != 0 {
		t.Fatalf("sent before approval: %v", got)
	}
	out, _, err := g.airlock("approvals", "list")
	if err != nil || !strings.Contains(out, held["/theirs.csv"].ID) || !strings.Contains(out, held["/mine.csv"].ID) {
		t.Errorf("approvals list: %v\n%s", err, out)
	}
	_, errOut, err := g.airlock("approvals", "approve", held["/mine.csv"].ID)
	if err == nil || !strings.Contains(errOut, "writer of a file cannot approve it") {
		t.Errorf("the writer's own approval: %v\n%s", err, errOut)
	}
	if _, errOut, err := g.airlock("approvals", "reject", held["/mine.csv"].ID, "--reason", "wrong extract"); err != nil {
		t.Fatalf("reject: %v\n%s", err, errOut)
	}
	if out, errOut, err := g.airlock("approvals", "approve", held["/theirs.csv"].ID); err != nil || !strings.Contains(out, "it will be sent") {
		t.Fatalf("approve: %v\n%s%s", err, out, errOut)
	}
	g.waitSent(t, "proj", exported{"proj/theirs.csv": want["proj/theirs.csv"]}, 30*time.Second)
	if got := objects(t, target); len(got) != 1 || got["theirs.csv"] != want["proj/theirs.csv"] {
		t.Errorf("target holds %v; want theirs.csv only", got)
	}
	mine, err := os.ReadFile(filepath.Join(exports, "proj", "mine.csv"))
	if err != nil || len(mine) != 100 {
		t.Errorf("the rejected file: %d bytes, %v; want it left as written", len(mine), err)
	}
	rejected := g.eventsOf(held["/mine.csv"].ID)
	if ev := rejected[len(rejected)-1]; ev.Kind != "approval.rejected" || ev.Detail["reason"] != "wrong extract" || !strings.HasPrefix(ev.Actor, "operator:") {
		t.Errorf("last event of the rejected transfer: %+v", ev)
	}
	if !bytes.Contains([]byte(fmt.Sprint(g.eventsOf(held["/theirs.csv"].ID))), []byte("approval.granted")) {
		t.Error("no approval.granted event")
	}
	g.auditVerifies(t)
}

// TestPullRetention: a pull dataset's `retention` deletes, from its bucket
// on a real S3 server, the objects last written before it, each audited;
// newer ones stay.
func TestPullRetention(t *testing.T) {
	t.Parallel()
	s3 := startVersity(t, "pull")
	put := toBucket(t, s3, "pull")
	want := exported{}
	for _, key := range []string{"old.csv", "deep/old.bin", "new.csv"} {
		want.put(t, put, key, 100)
	}
	// versitygw's posix backend dates an object by its file.
	old := time.Now().Add(-3 * 24 * time.Hour)
	for _, key := range []string{"old.csv", "deep/old.bin"} {
		if err := os.Chtimes(filepath.Join(s3.Root, "pull", filepath.FromSlash(key)), old, old); err != nil {
			t.Fatal(err)
		}
	}
	g := newGateway(t, gatewayOpts{env: s3.Env()})
	writeFile(t, filepath.Join(g.dir, "suppliers", ".keep"), "")
	writeFile(t, filepath.Join(g.dir, "datasets", "shared.yaml"), fmt.Sprintf(`name: shared
paperwork: "https://docs.example/dsa/shared"
users: ["alpha_user"]
pull_arns: ["arn:aws:iam::111122223333:role/reader"]
pull_bucket: %q
retention: 2d
`, s3.url("pull")))
	g.start()
	eventually(t, time.Minute, "the old objects to be deleted", func() bool {
		left := objects(t, filepath.Join(s3.Root, "pull"))
		return len(left) == 1 && left["new.csv"] == want["new.csv"]
	})
	var deleted []string
	for _, ev := range g.events() {
		if ev.Kind == "retention.delete" {
			deleted = append(deleted, ev.Detail["key"])
		}
	}
	if len(deleted) != 2 {
		t.Errorf("retention.delete events for %v; want old.csv and deep/old.bin", deleted)
	}
	g.auditVerifies(t)
}

// TestPushNotification: with versitygw's bucket notifications posted to
// airlock's /events/s3, a file written into the export area is sent long
// before the next listing (watch.every: 1m).
func TestPushNotification(t *testing.T) {
	t.Parallel()
	g := newGateway(t, gatewayOpts{})
	// versitygw posts a test event as it starts, before airlock (which
	// needs its address) runs: a relay answers that one.
	relay := httptest.NewServer(&httputil.ReverseProxy{
		Rewrite:      func(r *httputil.ProxyRequest) { r.SetURL(&url.URL{Scheme: "http", Host: g.httpAddr}) },
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusNoContent) },
	})
	t.Cleanup(relay.Close)
	v := &s3Server{testpeer.StartVersityArgs(t, []string{"--event-webhook-url", relay.URL + "/events/s3"}, "exports", "target")}
	g.env = append(g.env, v.Env()...)
	cfg, err := os.ReadFile(g.cfg)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, g.cfg, string(cfg)+fmt.Sprintf("exports: %q\nwatch:\n  every: 1m\n", v.url("exports")))
	writeFile(t, filepath.Join(g.dir, "suppliers", ".keep"), "")
	writeFile(t, filepath.Join(g.dir, "datasets", "proj.yaml"), dataset{name: "proj", bucket: testpeer.S3URL(v.Addr, "target", "out")}.yaml())
	g.start()
	time.Sleep(2 * time.Second) // past the first listing, at start
	want := exported{}
	start := time.Now()
	want.put(t, toBucket(t, v, "exports"), "proj/now.csv", 1000)
	trs := g.waitSent(t, "proj", want, 20*time.Second)
	t.Logf("sent %s after the write", time.Since(start).Round(time.Millisecond))
	assertSent(t, "proj", want, trs, filepath.Join(v.Root, "target", "out"))
	if n := g.metric(`airlock_watch_polls_total{trigger="kick"}`); n < 1 {
		t.Errorf("no listing was kicked by a notification (%v)", n)
	}
}
