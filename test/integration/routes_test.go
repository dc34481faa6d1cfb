package integration

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/testpeer"
)

// TestRouteFlag: a route watching a dated prefix on versitygw sends,
// when pipeline_success.flag appears, every other object under today's
// prefix to today's destination prefix, as one batch; the flag is not
// sent, the batch's manifest is, once every file has arrived; a file
// written after the flag waits for the next one, and the rewritten flag
// sends the prefix again as a re-run.
func TestRouteFlag(t *testing.T) {
	t.Parallel()
	s3 := startVersity(t, "src", "dest")
	put := toBucket(t, s3, "src")
	today := time.Now().UTC().Format(time.DateOnly)
	g := newGateway(t, gatewayOpts{env: s3.Env(), extra: "watch:\n  every: 300ms\n"})
	writeFile(t, filepath.Join(g.dir, "suppliers", ".keep"), "")
	writeFile(t, filepath.Join(g.dir, "routes", "cbol_report.yaml"), fmt.Sprintf(`name: cbol_report
source: %q
flag: "pipeline_success.flag"
destination: %q
recipient: "Data Warehouse"
`, testpeer.S3URL(s3.Addr, "src", "dataegress/cbol-report/$TODAYS_DATE/"), testpeer.S3URL(s3.Addr, "dest", "cbol/$TODAYS_DATE/")))
	g.start()

	want := exported{}
	prefix := "dataegress/cbol-report/" + today + "/"
	for i := range 5 {
		want.put(t, put, fmt.Sprintf("%spart-%d.csv", prefix, i), 10<<10+i)
	}
	want.put(t, put, prefix+"nested/summary.json", 300)
	time.Sleep(time.Second) // listed, but no flag yet: nothing is sent
	if rows := g.egressRows(t, "cbol_report"); len(rows) != 0 {
		t.Fatalf("sent before the flag: %+v", rows)
	}
	put(prefix+"pipeline_success.flag", nil)
	delivered := func(b ledger.Batch) bool { return b.State == ledger.BatchDelivered }
	batches := g.waitBatches(t, 1, delivered)
	if b := batches[0]; b.Files != 6 || b.Reruns != "" {
		t.Errorf("batch %+v; want 6 files, no re-run", b)
	}
	got := objects(t, filepath.Join(s3.Root, "dest", "cbol", today))
	for key, sum := range want {
		if rel := strings.TrimPrefix(key, prefix); got[rel] != sum {
			t.Errorf("%s: destination holds %q; want %s", rel, got[rel], sum)
		}
	}
	if _, ok := got[batches[0].ID+".manifest.json"]; !ok || len(got) != len(want)+1 {
		t.Errorf("destination holds %v; want the %d files and the batch's manifest (never the flag)", got, len(want))
	}

	out, errOut, err := g.airlock("batches", "show", batches[0].ID, "--json")
	var shown struct {
		ledger.Batch
		Members []ledger.Transfer `json:"members"`
	}
	if err != nil || json.Unmarshal([]byte(out), &shown) != nil || len(shown.Members) != 6 || shown.State != ledger.BatchDelivered {
		t.Errorf("batches show: %v %s\n%s", err, errOut, out)
	}
	if n := g.metric(`airlock_route_files_total{outcome="delivered",route="cbol_report"}`); n != 6 {
		t.Errorf("airlock_route_files_total delivered = %v; want 6", n)
	}
	if n := g.metric(`airlock_batch_latency_seconds_count{route="cbol_report"}`); n != 1 {
		t.Errorf("batch latencies observed: %v; want 1", n)
	}

	// Written after the flag: no batch of its own, sent with the next one.
	want.put(t, put, prefix+"late.csv", 50)
	time.Sleep(time.Second)
	if bs := g.waitBatches(t, 1, nil); len(bs) != 1 {
		t.Fatalf("%d batches after a late file; want 1", len(bs))
	}
	time.Sleep(1100 * time.Millisecond) // a new modification time, to the second
	put(prefix+"pipeline_success.flag", []byte("again"))
	batches = g.waitBatches(t, 2, delivered)
	if b := batches[0]; b.Files != 7 || b.Reruns != batches[1].ID {
		t.Errorf("re-run %+v; want 7 files, reruns %s", b, batches[1].ID)
	}
	if got := objects(t, filepath.Join(s3.Root, "dest", "cbol", today)); got["late.csv"] != want[prefix+"late.csv"] {
		t.Errorf("late.csv not sent with the re-run: %v", got)
	}
	g.auditVerifies(t)
}

// waitBatches waits for n batches that all pass done (nil: any), newest
// first.
func (g *gateway) waitBatches(t *testing.T, n int, done func(ledger.Batch) bool) []ledger.Batch {
	t.Helper()
	var bs []ledger.Batch
	eventually(t, time.Minute, fmt.Sprintf("%d batches", n), func() bool {
		out, errOut, err := g.airlock("batches", "list", "--json")
		if err != nil {
			t.Fatalf("batches list: %v\n%s", err, errOut)
		}
		if err := json.Unmarshal([]byte(out), &bs); err != nil {
			t.Fatalf("batches list: %v\n%s", err, out)
		}
		if len(bs) != n {
			return false
		}
		for _, b := range bs {
			if done != nil && !done(b) {
				return false
			}
		}
		return true
	})
	return bs
}
