package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/testpeer"
)

// flagRoute writes routes/<name>.yaml: source prefix "batch/" of bucket
// src on s3srv, flag pipeline_success.flag, to destination (with extra
// YAML lines).
func flagRoute(t *testing.T, g *gateway, s3srv *s3Server, name, destination, extra string) {
	t.Helper()
	writeFile(t, filepath.Join(g.dir, "routes", name+".yaml"), fmt.Sprintf("name: %s\nsource: %q\nflag: \"pipeline_success.flag\"\ndestination: %q\n%s",
		name, testpeer.S3URL(s3srv.Addr, "src", "batch/"), destination, extra))
}

// putBatch writes n small files under batch/ of bucket src, then the flag.
func putBatch(t *testing.T, s3srv *s3Server, n int) exported {
	t.Helper()
	put, want := toBucket(t, s3srv, "src"), exported{}
	for i := range n {
		want.put(t, put, fmt.Sprintf("batch/d%d/f%04d.bin", i%10, i), 1000+(i*37)%9000)
	}
	put("batch/pipeline_success.flag", nil)
	return want
}

// assertBatchAt checks that dir holds each file of want once, with its
// bytes, the batch's manifest, written after every file, and nothing else.
func assertBatchAt(t *testing.T, dir string, want exported, b ledger.Batch) {
	t.Helper()
	got := objects(t, dir)
	for key, sum := range want {
		if rel := strings.TrimPrefix(key, "batch/"); got[rel] != sum {
			t.Errorf("%s: %q at the destination; want sha256 %s", rel, got[rel], sum)
		}
	}
	manifest := filepath.Join(dir, b.ID+".manifest.json")
	if _, ok := got[b.ID+".manifest.json"]; !ok || len(got) != len(want)+1 {
		t.Fatalf("destination holds %d objects; want the %d files and the manifest, nothing else (never the flag)", len(got), len(want))
	}
	mi, err := os.Stat(manifest)
	if err != nil {
		t.Fatal(err)
	}
	for rel := range got {
		if fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(rel))); err == nil && fi.ModTime().After(mi.ModTime()) {
			t.Errorf("%s was written after the manifest", rel)
		}
	}
}

// TestRouteBatchToS3: 1,000 files and the flag on versitygw arrive at an
// S3 destination once each, the manifest last; a restart and re-polls of
// the same flag send nothing again.
func TestRouteBatchToS3(t *testing.T) {
	t.Parallel()
	s3srv := startVersity(t, "src", "dest")
	g := newGateway(t, gatewayOpts{env: s3srv.Env(), extra: "watch:\n  every: 300ms\n"})
	writeFile(t, filepath.Join(g.dir, "suppliers", ".keep"), "")
	flagRoute(t, g, s3srv, "thousand", testpeer.S3URL(s3srv.Addr, "dest", "out/"), "")
	want := putBatch(t, s3srv, 1000)
	g.start()
	bs := g.waitBatches(t, 1, func(b ledger.Batch) bool { return b.State == ledger.BatchDelivered })
	assertBatchAt(t, filepath.Join(s3srv.Root, "dest", "out"), want, bs[0])

	g.stop()
	g.start()
	time.Sleep(3 * time.Second) // several polls, from a fresh process
	if n := len(g.egressRows(t, "thousand")); n != 1000 {
		t.Errorf("%d transfers after a restart and re-polls; want 1000", n)
	}
	if bs := g.waitBatches(t, 1, nil); len(bs) != 1 {
		t.Errorf("%d batches; want 1", len(bs))
	}
	g.auditVerifies(t)
}

// TestRouteBatchToNginx: a batch to nginx (mutual TLS) survives nginx
// stopped for 30 s mid-batch, then airlock killed (SIGKILL) three times:
// every file arrives once with its bytes, and the manifest last.
func TestRouteBatchToNginx(t *testing.T) {
	t.Parallel()
	s3srv := startVersity(t, "src")
	ca := testpeer.NewCA(t, "partner")
	ngx := testpeer.StartNginx(t, ca.Server("receiver"), ca.CertFile)
	client := ca.Client("airlock")
	g := newGateway(t, gatewayOpts{env: s3srv.Env(), extra: "watch:\n  every: 300ms\n",
		pipeline: "  retry_backoff: 1s\n  max_backoff: 4s\n  max_attempts: 200\n"})
	writeFile(t, filepath.Join(g.dir, "suppliers", ".keep"), "")
	flagRoute(t, g, s3srv, "to-dw", ngx.URL+"DA/", fmt.Sprintf("tls: {cert: %q, key: %q, ca: %q}\n", client.Cert, client.Key, ca.CertFile))
	want := putBatch(t, s3srv, 500)
	g.start()
	sent := func() int {
		n := 0
		for _, tr := range g.egressRows(t, "to-dw") {
			if tr.State == ledger.Delivered {
				n++
			}
		}
		return n
	}
	eventually(t, time.Minute, "the batch to be under way", func() bool { return sent() >= 20 })
	ngx.Stop()
	t.Logf("nginx stopped at %d of 500 files", sent())
	time.Sleep(30 * time.Second)
	ngx.Start()
	for kill := range 3 {
		time.Sleep(time.Duration(800+400*kill) * time.Millisecond)
		t.Logf("kill %d at %d of 500 files", kill+1, sent())
		g.kill()
		g.start()
	}
	bs := g.waitBatches(t, 1, func(b ledger.Batch) bool { return b.State == ledger.BatchDelivered })
	assertBatchAt(t, filepath.Join(ngx.Root, "DA"), want, bs[0])
	g.auditVerifies(t)
}
