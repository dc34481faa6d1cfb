package pipeline

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/airlock-gw/airlock/internal/crypt"
	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/ledger/ledgertest"
	"github.com/airlock-gw/airlock/internal/storage"
)

// egressFixture is a pipeline with a push dataset "proj" from an export
// directory to a target directory.
type egressFixture struct {
	*fixture
	exportDir, targetDir string
	exports              *Exports
}

func newEgressFixture(t *testing.T, dsn string, route Route) *egressFixture {
	t.Helper()
	root := t.TempDir()
	ef := &egressFixture{exportDir: filepath.Join(root, "exports"), targetDir: filepath.Join(root, "target")}
	route.Source, route.Target = ef.exportDir, ef.targetDir
	ef.fixture = newFixture(t, dsn, fixtureOptions{routes: map[string]Route{"proj": route}})
	store, err := storage.Open(t.Context(), ef.exportDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ef.exports = &Exports{Source: Source{Ledger: ef.ledger, Queue: ef.queue, Store: store,
		Metrics: ef.metrics, Log: testLogger(t)}, Routes: ef.deps.Routes}
	return ef
}

// export writes key into the export area and has it found, as a poll would.
func (ef *egressFixture) export(key string, data []byte) {
	ef.t.Helper()
	p := filepath.Join(ef.exportDir, filepath.FromSlash(key))
	writeFile(ef.t, p, data)
	ef.find(key)
}

func (ef *egressFixture) find(key string) {
	ef.t.Helper()
	fi, err := os.Stat(filepath.Join(ef.exportDir, filepath.FromSlash(key)))
	if err != nil {
		ef.t.Fatal(err)
	}
	if err := ef.exports.Found(ef.t.Context(), key, fi.Size(), fi.ModTime()); err != nil {
		ef.t.Fatalf("Found %s: %v", key, err)
	}
}

// only returns the one transfer of route proj at path.
func (ef *egressFixture) only(path string) ledger.Transfer {
	ef.t.Helper()
	trs, err := ef.ledger.List(ef.t.Context(), ledger.Filter{Route: "proj", Path: path})
	if err != nil || len(trs) != 1 {
		ef.t.Fatalf("transfers of proj at %s: %d, %v; want 1", path, len(trs), err)
	}
	return trs[0]
}

func TestEgressPush(t *testing.T) {
	t.Parallel()
	for _, keep := range []bool{false, true} {
		t.Run(map[bool]string{false: "delete", true: "keep_files"}[keep], func(t *testing.T) {
			t.Parallel()
			ef := newEgressFixture(t, ledgertest.SQLite(t), Route{KeepFiles: keep})
			ef.run()
			files := map[string][]byte{
				"proj/empty.csv":         {},
				"proj/a/b/nested.bin":    bytes.Repeat([]byte("x"), 3<<20),
				"proj/2026-12-07/report": []byte("rows"),
			}
			for key, data := range files {
				ef.export(key, data)
			}
			for key, data := range files {
				tr := ef.waitState(ef.only("/"+key[len("proj/"):]).ID, ledger.Delivered)
				if tr.Direction != ledger.Egress || tr.SHA256 != hexSum(data) {
					t.Errorf("%s: %+v; want egress with sha256 %s", key, tr, hexSum(data))
				}
				got, err := os.ReadFile(filepath.Join(ef.targetDir, filepath.FromSlash(key[len("proj/"):])))
				if err != nil || !bytes.Equal(got, data) {
					t.Errorf("%s at the target: %d bytes, %v; want the %d written", key, len(got), err, len(data))
				}
			}
			left := ef.files(ef.exportDir)
			if keep && len(left) != len(files) || !keep && len(left) != 0 {
				t.Errorf("left in the export area: %v (keep_files %v)", left, keep)
			}
			// Seen again (a re-poll, a restart): never sent twice.
			if keep {
				for key := range files {
					ef.find(key)
				}
				if trs, _ := ef.ledger.List(t.Context(), ledger.Filter{Route: "proj"}); len(trs) != len(files) {
					t.Errorf("%d transfers after a second poll; want %d", len(trs), len(files))
				}
			}
			if _, err := ef.ledger.VerifyAudit(t.Context()); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestExportUnrouted(t *testing.T) {
	t.Parallel()
	ef := newEgressFixture(t, ledgertest.SQLite(t), Route{})
	ef.export("elsewhere/x.csv", []byte("x"))
	ef.export("loose.csv", []byte("y"))
	ef.find("elsewhere/x.csv") // seen again: not reported again
	ef.find("loose.csv")
	if n := testutil.ToFloat64(ef.metrics.exports.WithLabelValues("unrouted")); n != 2 {
		t.Errorf("unrouted objects counted %v times; want 2 (each once)", n)
	}
	evs, err := ef.ledger.Events(t.Context(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range evs {
		if ev.Kind == "export.unrouted" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d export.unrouted events; want 2", n)
	}
	if trs, _ := ef.ledger.List(t.Context(), ledger.Filter{Direction: ledger.Egress}); len(trs) != 0 {
		t.Errorf("unrouted objects made transfers: %+v", trs)
	}
}

func TestEgressApproval(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		ef := newEgressFixture(t, dsn, Route{Approval: 1})
		ef.run()
		ef.export("proj/approved.csv", []byte("yes"))
		ef.export("proj/rejected.csv", []byte("no"))
		approved := ef.waitState(ef.only("/approved.csv").ID, ledger.AwaitingApproval)
		rejected := ef.waitState(ef.only("/rejected.csv").ID, ledger.AwaitingApproval)
		me, err := user.Current()
		if err != nil || approved.Supplier != me.Username {
			t.Fatalf("writer = %q; want the file's owner %q (%v)", approved.Supplier, me.Username, err)
		}
		time.Sleep(200 * time.Millisecond) // nothing leaves while held
		if got := ef.files(ef.targetDir); len(got) != 0 {
			t.Fatalf("sent before approval: %v", got)
		}
		routes := ef.deps.Routes
		writer := &Operator{Ledger: ef.ledger, Queue: ef.queue, Actor: "operator:" + me.Username, Person: me.Username, Routes: routes}
		if _, _, err := writer.Approve(t.Context(), approved.ID); !errors.Is(err, ledger.ErrOwnApproval) {
			t.Fatalf("the writer's own approval = %v; want ErrOwnApproval", err)
		}
		steward := &Operator{Ledger: ef.ledger, Queue: ef.queue, Actor: "operator:steward", Person: "steward", Routes: routes}
		if _, err := steward.Reject(t.Context(), rejected.ID, ""); err == nil {
			t.Error("a rejection without a reason was accepted")
		}
		if _, err := steward.Reject(t.Context(), rejected.ID, "not the agreed extract"); err != nil {
			t.Fatal(err)
		}
		if _, n, err := steward.Approve(t.Context(), approved.ID); err != nil || n != 1 {
			t.Fatalf("steward's approval = %d, %v", n, err)
		}
		ef.waitState(approved.ID, ledger.Delivered)
		if got := ef.files(ef.targetDir); !slices.Equal(got, []string{"approved.csv"}) {
			t.Errorf("sent: %v; want approved.csv only", got)
		}
		if got := ef.files(ef.exportDir); !slices.Equal(got, []string{"proj/rejected.csv"}) {
			t.Errorf("left in the export area: %v; want the rejected file, untouched", got)
		}
		if kinds := ef.eventKinds(rejected.ID); !slices.Contains(kinds, "approval.rejected") {
			t.Errorf("rejection events: %v", kinds)
		}
	})
}

// TestEgressRetry: a send that keeps failing fails the transfer; once the
// cause is gone, an operator's retry sends it.
func TestEgressRetry(t *testing.T) {
	t.Parallel()
	ef := newEgressFixture(t, ledgertest.SQLite(t), Route{})
	// A regular file where the target directory should be.
	writeFile(t, ef.targetDir, []byte("not a directory"))
	ef.run()
	ef.export("proj/data.csv", []byte("rows"))
	failed := ef.waitState(ef.only("/data.csv").ID, ledger.Failed)
	if err := os.Remove(ef.targetDir); err != nil {
		t.Fatal(err)
	}
	op := &Operator{Ledger: ef.ledger, Queue: ef.queue, Actor: "operator:ops", Person: "ops", Routes: ef.deps.Routes}
	if _, err := op.Retry(t.Context(), failed.ID); err != nil {
		t.Fatal(err)
	}
	ef.waitState(failed.ID, ledger.Delivered)
	if got := ef.files(ef.targetDir); !slices.Equal(got, []string{"data.csv"}) {
		t.Errorf("target holds %v", got)
	}
}

// flagRoute is a fixture with route cbol from a local source directory
// (prefix day/, flag pipeline_success.flag) and its flag source.
type flagRoute struct {
	*fixture
	rs                *RouteSource
	srcDir, targetDir string
}

// newFlagRoute makes route cbol with route(srcDir, targetDir) and opts.
func newFlagRoute(t *testing.T, opts fixtureOptions, route func(src, dest string) Route) *flagRoute {
	t.Helper()
	root := t.TempDir()
	fr := &flagRoute{srcDir: filepath.Join(root, "src"), targetDir: filepath.Join(root, "dest")}
	opts.routes = map[string]Route{"cbol": route(fr.srcDir, fr.targetDir)}
	fr.fixture = newFixture(t, ledgertest.SQLite(t), opts)
	store, err := storage.Open(t.Context(), fr.srcDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	fr.rs = &RouteSource{Source: Source{Ledger: fr.ledger, Queue: fr.queue, Store: store, Metrics: fr.metrics, Log: testLogger(t)},
		Route: "cbol", Prefix: "day/", Flag: "pipeline_success.flag"}
	return fr
}

// write puts each key in the source, its own name for its bytes.
func (fr *flagRoute) write(t *testing.T, keys ...string) {
	t.Helper()
	for _, key := range keys {
		writeFile(t, filepath.Join(fr.srcDir, filepath.FromSlash(key)), []byte(key))
	}
}

// found tells the flag source that key is there, as a poll would.
func (fr *flagRoute) found(t *testing.T, key string) {
	t.Helper()
	fi, err := os.Stat(filepath.Join(fr.srcDir, filepath.FromSlash(key)))
	if err != nil {
		t.Fatal(err)
	}
	if err := fr.rs.Found(t.Context(), key, fi.Size(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
}

// TestRouteFlagBatch: the flag sends every other object under the prefix
// as one batch, to a target dated by the day it was queued; the flag is
// not sent, a file written after it waits for the next flag, the same flag
// seen again starts nothing, and a rewritten flag re-runs the batch.
func TestRouteFlagBatch(t *testing.T) {
	t.Parallel()
	f := newFlagRoute(t, fixtureOptions{}, func(src, dest string) Route {
		return Route{Source: src, Target: dest + "/$TODAYS_DATE", KeepFiles: true}
	})
	f.run()
	srcDir, targetDir, found := f.srcDir, f.targetDir, func(key string) { f.found(t, key) }
	for _, key := range []string{"day/a.csv", "day/sub/b.csv"} {
		f.write(t, key)
		found(key) // before the flag: nothing yet
	}
	if bs, _ := f.ledger.Batches(t.Context(), ledger.BatchFilter{Route: "cbol"}); len(bs) != 0 {
		t.Fatalf("batches before the flag: %+v", bs)
	}
	writeFile(t, filepath.Join(srcDir, "day", "pipeline_success.flag"), nil)
	found("day/pipeline_success.flag")
	found("day/pipeline_success.flag") // seen again
	writeFile(t, filepath.Join(srcDir, "day", "late.csv"), []byte("late"))
	found("day/late.csv")
	bs, err := f.ledger.Batches(t.Context(), ledger.BatchFilter{Route: "cbol"})
	if err != nil || len(bs) != 1 || bs[0].Files != 2 {
		t.Fatalf("batches = %+v, %v; want one of 2 files", bs, err)
	}
	for _, tr := range mustList(t, f.ledger, ledger.Filter{Batch: bs[0].ID}) {
		f.waitState(tr.ID, ledger.Delivered)
	}
	date := time.Now().UTC().Format(time.DateOnly)
	manifestName := date + "/" + bs[0].ID + ".manifest.json"
	waitBatch(t, f.ledger, bs[0].ID, ledger.BatchDelivered)
	got := f.files(targetDir)
	slices.Sort(got)
	want := []string{date + "/a.csv", manifestName, date + "/sub/b.csv"}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("target holds %v; want %v", got, want)
	}
	var m manifest
	raw, err := os.ReadFile(filepath.Join(targetDir, filepath.FromSlash(manifestName)))
	if err != nil || json.Unmarshal(raw, &m) != nil || len(m.Files) != 2 || m.Files[0].SHA256 != hexSum([]byte("day/a.csv")) {
		t.Errorf("manifest: %s (%v)", raw, err)
	}
	// The flag rewritten: the prefix is sent again, late.csv with it.
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(filepath.Join(srcDir, "day", "pipeline_success.flag"), later, later); err != nil {
		t.Fatal(err)
	}
	found("day/pipeline_success.flag")
	bs, err = f.ledger.Batches(t.Context(), ledger.BatchFilter{Route: "cbol"})
	if err != nil || len(bs) != 2 || bs[0].Reruns != bs[1].ID || bs[0].Files != 3 {
		t.Fatalf("batches after the flag was rewritten = %+v, %v; want a re-run of 3 files", bs, err)
	}
}

// TestRouteBatchApproval: a flag route with approval holds its batch
// until someone other than the writer approves it whole; a member alone
// cannot be approved.
func TestRouteBatchApproval(t *testing.T) {
	t.Parallel()
	f := newFlagRoute(t, fixtureOptions{}, func(src, dest string) Route {
		return Route{Source: src, Target: dest, KeepFiles: true, Approval: 1}
	})
	f.run()
	targetDir := f.targetDir
	f.write(t, "day/a.csv", "day/b.csv", "day/pipeline_success.flag")
	f.found(t, "day/pipeline_success.flag")
	bs, err := f.ledger.Batches(t.Context(), ledger.BatchFilter{Route: "cbol"})
	if err != nil || len(bs) != 1 {
		t.Fatalf("batches = %+v, %v", bs, err)
	}
	members := mustList(t, f.ledger, ledger.Filter{Batch: bs[0].ID})
	for _, tr := range members {
		f.waitState(tr.ID, ledger.AwaitingApproval)
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	op := func(person string) *Operator {
		return &Operator{Ledger: f.ledger, Queue: f.queue, Actor: "operator:" + person, Person: person, Routes: f.deps.Routes}
	}
	if _, _, err := op("steward").Approve(t.Context(), members[0].ID); !errors.Is(err, ErrNotAllowed) || !strings.Contains(err.Error(), "--batch") {
		t.Errorf("a member's own approval = %v; want refused, naming the batch", err)
	}
	if _, _, err := op(me.Username).ApproveBatch(t.Context(), bs[0].ID); !errors.Is(err, ledger.ErrOwnApproval) {
		t.Errorf("the writer's approval = %v; want ErrOwnApproval", err)
	}
	if got := f.files(targetDir); len(got) != 0 {
		t.Fatalf("sent before approval: %v", got)
	}
	if _, n, err := op("steward").ApproveBatch(t.Context(), bs[0].ID); err != nil || n != 1 {
		t.Fatalf("steward's approval = %d, %v", n, err)
	}
	waitBatch(t, f.ledger, bs[0].ID, ledger.BatchDelivered)
	if got := f.files(targetDir); len(got) != 3 {
		t.Errorf("target holds %v; want both files and the manifest", got)
	}
}

func mustList(t *testing.T, l *ledger.Ledger, f ledger.Filter) []ledger.Transfer {
	t.Helper()
	trs, err := l.List(t.Context(), f)
	if err != nil {
		t.Fatal(err)
	}
	return trs
}

// TestRouteCompressEncrypt: a route that compresses and encrypts writes
// what decrypts and decompresses to the source, and records the sha256
// and size of what it sent.
func TestRouteCompressEncrypt(t *testing.T) {
	t.Parallel()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	ef := newEgressFixture(t, ledgertest.SQLite(t), Route{KeepFiles: true, Transform: &Transform{
		Compress: "gzip", Encrypt: crypt.EncryptSpec{Age: []string{id.Recipient().String()}}}})
	ef.run()
	data := bytes.Repeat([]byte("a compressible row\n"), 50000)
	ef.export("proj/rows.csv", data)
	tr := ef.waitState(ef.only("/rows.csv").ID, ledger.Delivered)
	sent, err := os.ReadFile(filepath.Join(ef.targetDir, "rows.csv"))
	if err != nil {
		t.Fatal(err)
	}
	dec, err := age.Decrypt(bytes.NewReader(sent), id)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(dec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("decrypted and decompressed: %d bytes, %v; want the %d sent", len(got), err, len(data))
	}
	evs, err := ef.ledger.Events(t.Context(), tr.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	last := evs[len(evs)-1]
	if last.Detail["sha256_out"] != hexSum(sent) || last.Detail["size_out"] != fmt.Sprint(len(sent)) || tr.SHA256 != hexSum(data) {
		t.Errorf("delivery event %v, transfer sha256 %s; want the sums of the bytes read and sent", last.Detail, tr.SHA256)
	}
}

// TestReconcileSettlesBatch: a batch whose members were all delivered, or
// one failed, but whose settling job was lost is settled by the
// reconciler: its manifest sent and it delivered, or it failed.
func TestReconcileSettlesBatch(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		member ledger.State
		want   string
		files  int // in the target: the manifest
	}{
		{ledger.Delivered, ledger.BatchDelivered, 1},
		{ledger.Failed, ledger.BatchFailed, 0},
	} {
		t.Run(string(tt.member), func(t *testing.T) {
			t.Parallel()
			targetDir := filepath.Join(t.TempDir(), "dest")
			f := newFixture(t, ledgertest.SQLite(t), fixtureOptions{routes: map[string]Route{
				"cbol": {Source: t.TempDir(), Target: targetDir, KeepFiles: true},
			}})
			ctx := t.Context()
			at := time.Now()
			member := ledger.NewTransfer(ledger.Transfer{Direction: ledger.Egress, State: ledger.Queued, Supplier: "etl",
				Route: "cbol", Path: "/a.csv", Size: 1, LandingKey: "day/a.csv", MTime: &at})
			b, err := f.ledger.OpenBatch(ctx, ledger.Batch{Route: "cbol", Trigger: "day/flag", TriggerVersion: "0:1"}, []ledger.Transfer{member}, nil)
			if err != nil {
				t.Fatal(err)
			}
			sum := hexSum([]byte("a"))
			if _, err := f.ledger.Advance(ctx, member.ID, []ledger.State{ledger.Queued}, tt.member,
				ledger.Change{SHA256: &sum}, ledger.Event{}); err != nil {
				t.Fatal(err)
			}
			if _, err := f.ledger.DB().ExecContext(ctx, `UPDATE batches SET created_at = '2020-01-01T00:00:00.000000Z' WHERE id = $1`, b.ID); err != nil {
				t.Fatal(err)
			}
			f.run() // the reconciler runs at start
			waitBatch(t, f.ledger, b.ID, tt.want)
			if got := f.files(targetDir); len(got) != tt.files || tt.files == 1 && got[0] != b.ID+".manifest.json" {
				t.Errorf("target holds %v; want %d manifest", got, tt.files)
			}
		})
	}
}

// waitBatch waits for batch id to be in state.
func waitBatch(t *testing.T, l *ledger.Ledger, id, state string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		b, err := l.GetBatch(t.Context(), id)
		if err == nil && b.State == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch %+v (%v); want %s", b, err, state)
		}
	}
}
