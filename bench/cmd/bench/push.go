package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// pushDataset is scenario 8's dataset: what is written under
// <exports>/<pushDataset>/ goes to its bucket.
const pushDataset = "bench_push"

// pushResult is scenario 8, airlock only: one object pushed from a local
// export area to a dataset's bucket on versitygw, at two sizes.
type pushResult struct {
	sizes   []int64
	mbps    map[int64][]float64 // first event → delivered: hash the source, send, verify
	sendMBs map[int64][]float64 // delivering → delivered: the streamed copy and its check
	rss     map[int64][]float64 // MiB
	errors  int
	notes   []string
	skipped string // why the scenario did not run
}

// pushStep runs scenario 8 if it is selected and the disk has room: the
// sources, and the object in the target twice while versitygw assembles
// its parts.
func (b *bench) pushStep(ctx context.Context) (*pushResult, error) {
	switch {
	case b.opts.noS3:
		return &pushResult{skipped: "skipped (-no-s3)"}, nil
	case !b.opts.selected("push"):
		return &pushResult{skipped: "not selected (-only)"}, nil
	}
	if err := b.checkSpace(b.opts.s3Small+3*b.opts.s3Large+1<<30, "the push scenario"); err != nil {
		logf("push scenario skipped: %v", err)
		return &pushResult{skipped: "skipped: " + err.Error()}, nil
	}
	logf("scenario: push %s and %s from a local export area to an S3 target (airlock only)", humanSize(b.opts.s3Small), humanSize(b.opts.s3Large))
	return b.scenarioPush(ctx)
}

// scenarioPush hard-links a source file into the dataset's prefix of a
// local export area, whole at once, for a freshly started airlock whose
// watcher finds it and whose egress job hashes it and streams it to
// versitygw (another store: no server-side copy). Its peak RSS (VmHWM) is
// read once the object is delivered; its times come from the transfer's
// audit events.
func (b *bench) scenarioPush(ctx context.Context) (*pushResult, error) {
	res := &pushResult{sizes: []int64{b.opts.s3Small, b.opts.s3Large},
		mbps: map[int64][]float64{}, sendMBs: map[int64][]float64{}, rss: map[int64][]float64{}}
	dir := filepath.Join(b.dir, "pushbench")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	const bucket = "target"
	vg, err := startVersity(b.tools, dir, bucket)
	if err != nil {
		return nil, err
	}
	defer vg.stop()
	exports := filepath.Join(dir, "exports")
	tree, err := writeAirlockTree(filepath.Join(dir, "airlock"), treeSpec{env: vg.env(),
		extra: fmt.Sprintf("exports: %q\nwatch:\n  every: 250ms\n", exports)}, b.egressDir, b.client, b.dlClient)
	if err != nil {
		return nil, err
	}
	ds := fmt.Sprintf("name: %s\npaperwork: \"https://docs.example/dpia/bench\"\nusers: [\"bench\"]\nbucket: %q\n", pushDataset, vg.url(bucket))
	if err := writeFiles(map[string]string{filepath.Join(tree.dir, "datasets", pushDataset+".yaml"): ds}); err != nil {
		return nil, err
	}
	srcs := map[int64]srcFile{}
	for i, size := range res.sizes {
		logf("  writing a %s source file", humanSize(size))
		if srcs[size], err = makeSource(filepath.Join(dir, fmt.Sprintf("pushsrc-%d.bin", size)), size, byte(20+i)); err != nil {
			return nil, err
		}
	}
	defer func() {
		for _, s := range srcs {
			os.Remove(s.path)
		}
	}()
	for run := 1; run <= b.opts.runs; run++ {
		for _, size := range alternate(run, res.sizes[0], res.sizes[1]) {
			if err := b.pushRun(ctx, tree, exports, vg, bucket, srcs[size], run, res); err != nil {
				return nil, err
			}
		}
	}
	return res, nil
}

// pushRun pushes src once with a fresh airlock and records the result in
// res. Its error is one that ends the bench.
func (b *bench) pushRun(ctx context.Context, tree *airlockTree, exports string, vg *versity, bucket string, src srcFile, run int, res *pushResult) error {
	srv, err := startAirlock(b.tools, tree)
	if err != nil {
		return err
	}
	name := fmt.Sprintf("push-%d-%d.bin", src.size, run)
	p, err := b.push(ctx, tree, srv, filepath.Join(exports, pushDataset), src, name)
	if err == nil {
		if bad := checkFile(filepath.Join(vg.root, bucket, name), src); bad != "" {
			err = fmt.Errorf("target: %s", bad)
		}
	}
	srv.stop()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		res.errors++
		res.notes = append(res.notes, fmt.Sprintf("8. %s: %v", humanSize(src.size), err))
		logf("  run %d %s FAILED: %v\n%s", run, humanSize(src.size), err, lastLines(srv.tail(), 10))
	} else {
		v, send := float64(src.size)/mb/p.whole.Seconds(), float64(src.size)/mb/p.send.Seconds()
		res.mbps[src.size] = append(res.mbps[src.size], v)
		res.sendMBs[src.size] = append(res.sendMBs[src.size], send)
		res.rss[src.size] = append(res.rss[src.size], float64(p.rss)/(1<<20))
		logf("  run %d %-7s %8.1f MB/s (%s; the send alone %.1f MB/s), peak RSS %.1f MiB",
			run, humanSize(src.size), v, p.whole.Round(time.Millisecond), send, float64(p.rss)/(1<<20))
	}
	if err := errors.Join(removeFiles(filepath.Join(vg.root, bucket)), removeFiles(exports)); err != nil {
		return err
	}
	syscall.Sync()
	return nil
}

// pushed is one push as measured.
type pushed struct {
	whole, send time.Duration
	rss         int64 // bytes
}

// push links src into prefix, the dataset's directory of the export
// area, as name and waits until the ledger records it delivered.
func (b *bench) push(ctx context.Context, tree *airlockTree, srv *airlockServer, prefix string, src srcFile, name string) (pushed, error) {
	if err := os.MkdirAll(prefix, 0o755); err != nil {
		return pushed{}, err
	}
	if err := os.Link(src.path, filepath.Join(prefix, name)); err != nil {
		return pushed{}, err
	}
	tr, err := tree.waitDelivered(ctx, b.tools.airlock, pushDataset, "/"+name, b.opts.pipelineTimeout)
	if err != nil {
		return pushed{}, err
	}
	if tr.Size != src.size || tr.SHA256 != src.sha {
		return pushed{}, fmt.Errorf("ledger: %d bytes, sha256 %s; want %d, %s", tr.Size, tr.SHA256, src.size, src.sha)
	}
	return b.measured(ctx, tree, srv, tr)
}

// measured reads how a delivered egress transfer went: airlock's peak
// RSS so far, and its times from the transfer's audit events.
func (b *bench) measured(ctx context.Context, tree *airlockTree, srv *airlockServer, tr transfer) (pushed, error) {
	var p pushed
	var err error
	if p.rss, err = srv.peakRSS(); err != nil {
		return pushed{}, err
	}
	first, entered, err := tree.stateTimes(ctx, b.tools.airlock, tr.ID)
	if err != nil {
		return pushed{}, err
	}
	if entered["delivering"].IsZero() || entered["delivered"].IsZero() {
		return pushed{}, fmt.Errorf("transfer %s: no audit event enters delivering or delivered", tr.ID)
	}
	p.whole, p.send = entered["delivered"].Sub(first), entered["delivered"].Sub(entered["delivering"])
	return p, nil
}

// waitDelivered polls the ledger until the egress transfer of path on
// route is delivered, and fails when it has failed or timeout has passed.
func (t *airlockTree) waitDelivered(ctx context.Context, airlockBin, route, path string, timeout time.Duration) (transfer, error) {
	deadline := time.Now().Add(timeout)
	for {
		var trs []transfer
		if err := t.cli(ctx, airlockBin, &trs, "transfers", "list", "--direction", "egress", "--route", route); err != nil {
			return transfer{}, err
		}
		for _, tr := range trs {
			switch {
			case tr.Path != path:
			case tr.State == "delivered":
				return tr, nil
			case tr.State == "failed" || tr.State == "rejected":
				return transfer{}, fmt.Errorf("%s: %s (%s)", path, tr.State, tr.Error)
			}
		}
		if time.Now().After(deadline) {
			return transfer{}, fmt.Errorf("%s not delivered after %s", path, timeout)
		}
		select {
		case <-ctx.Done():
			return transfer{}, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// stateTimes reads a transfer's audit events: when the first was
// recorded, and when it first entered each state.
func (t *airlockTree) stateTimes(ctx context.Context, airlockBin, id string) (time.Time, map[string]time.Time, error) {
	var shown struct {
		Events []struct {
			At     time.Time         `json:"at"`
			Detail map[string]string `json:"detail"`
		} `json:"events"`
	}
	if err := t.cli(ctx, airlockBin, &shown, "transfers", "show", id); err != nil {
		return time.Time{}, nil, err
	}
	if len(shown.Events) == 0 {
		return time.Time{}, nil, fmt.Errorf("transfer %s has no audit events", id)
	}
	entered := map[string]time.Time{}
	for _, e := range shown.Events {
		if to := e.Detail["to"]; to != "" {
			if _, seen := entered[to]; !seen {
				entered[to] = e.At
			}
		}
	}
	return shown.Events[0].At, entered, nil
}

// pushRows are scenario 8: throughput and peak RSS at each size, and how
// much the peak grows with the size.
func (rep *report) pushRows() []row {
	p := rep.push
	if p == nil || p.skipped != "" {
		why := "skipped"
		if p != nil {
			why = p.skipped
		}
		return []row{{"8. push dataset: one object streamed to an S3 target (versitygw)", "—", why, "—", "RSS ≤ 128 MiB, within 10% across sizes", "—"}}
	}
	sm, lg := humanSize(p.sizes[0]), humanSize(p.sizes[1])
	rlarge := median(p.rss[p.sizes[1]])
	growth := rlarge / median(p.rss[p.sizes[0]])
	errNote := ""
	if p.errors > 0 {
		errNote = fmt.Sprintf(" (%d pushes failed)", p.errors)
	}
	return []row{
		{"8a. push dataset to an S3 target: " + sm + " (MB/s)", "—", cell(p.mbps[p.sizes[0]], 0) + errNote, "—", "—", "—"},
		{"8b. push dataset to an S3 target: " + lg + " (MB/s)", "—", cell(p.mbps[p.sizes[1]], 0), "—", "—", "—"},
		{"8c. push: airlock peak RSS, " + sm + " (MiB)", "—", cell(p.rss[p.sizes[0]], 1), "—", "—", "—"},
		{"8d. push: airlock peak RSS, " + lg + " (MiB)", "—", cell(p.rss[p.sizes[1]], 1), "—", "≤ 128 MiB", yesNo(rlarge <= 128 && p.errors == 0)},
		{"8e. push: peak RSS " + lg + " / " + sm, "—", fmtRatio(growth), "—", "≤ 1.10 (within 10%)", yesNo(math.Abs(growth-1) <= 0.10)},
	}
}

// pushNotes give scenario 8's send alone, and its failures.
func (rep *report) pushNotes() []string {
	p := rep.push
	if p == nil || p.skipped != "" {
		return nil
	}
	note := fmt.Sprintf("8. the send alone (delivering → delivered: the streamed copy, versitygw assembling the parts, the check): %s MB/s at %s, %s MB/s at %s.",
		cell(p.sendMBs[p.sizes[0]], 0), humanSize(p.sizes[0]), cell(p.sendMBs[p.sizes[1]], 0), humanSize(p.sizes[1]))
	return append([]string{note}, p.notes...)
}
