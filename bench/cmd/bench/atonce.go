package main

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"sync"
	"time"
)

// concurrent: many sessions at once, each uploading one file, on both
// servers in turn.
func (b *bench) scenarioConcurrent(ctx context.Context) (*result, error) {
	res := newResult()
	for run := 1; run <= b.opts.runs; run++ {
		for _, s := range b.order(run) {
			if err := b.concurrentRun(ctx, s, fmt.Sprintf("conc-%d", run), run, res); err != nil {
				return nil, err
			}
			if err := b.settle(); err != nil {
				return nil, err
			}
		}
	}
	return res, nil
}

// concurrentRun starts opts.sessions sessions on s at once, each uploading
// one file named <prefix>-NN.bin, and records the run in res (atOnceRun).
func (b *bench) concurrentRun(ctx context.Context, s *side, prefix string, run int, res *result) error {
	n := b.opts.sessions
	names, batches := make([]string, n), make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("%s-%02d.bin", prefix, i)
		batches[i] = fmt.Sprintf("put %s %s\n", b.medium.path, path.Join(s.uploadDir, names[i]))
	}
	return b.atOnceRun(ctx, s, batches, names, b.medium, run, res)
}

// smallAtOnce: opts.smallSessions sessions at once, each putting
// opts.smallPerSession small files; files per second in all.
func (b *bench) scenarioSmallAtOnce(ctx context.Context) (*result, error) {
	res := newResult()
	for run := 1; run <= b.opts.runs; run++ {
		for _, s := range b.order(run) {
			var all []string
			batches := make([]string, b.opts.smallSessions)
			for i := range batches {
				var names []string
				names, batches[i] = putBatch(s, b.small, fmt.Sprintf("par-%d-%d", run, i), b.opts.smallPerSession)
				all = append(all, names...)
			}
			if err := b.atOnceRun(ctx, s, batches, all, b.small, run, res); err != nil {
				return nil, err
			}
			if err := b.settle(); err != nil {
				return nil, err
			}
		}
	}
	return res, nil
}

// atOnceRun runs one sftp session per batch on s, all at once, and
// records in res the aggregate over the wall time from the first start
// to the last exit (MB/s when there is one file a session, else files/s),
// and the number of sessions that failed or files (names, copies of src)
// that did not arrive complete. Its error is one that ends the bench.
func (b *bench) atOnceRun(ctx context.Context, s *side, batches, names []string, src srcFile, run int, res *result) error {
	failed := make([]error, len(batches))
	d, cpu, ierr := b.measure(ctx, s, func() (time.Duration, error) {
		cctx, cancel := context.WithTimeout(ctx, b.opts.cmdTimeout)
		defer cancel()
		var wg sync.WaitGroup
		start := time.Now()
		for i, batch := range batches {
			cmd := b.sftpCmd(cctx, s, s.up, aesGCM, batch)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			wg.Go(func() {
				if err := cmd.Run(); err != nil {
					failed[i] = fmt.Errorf("session %d: %v: %s", i, err, lastLines(out.String(), 3))
				}
			})
		}
		wg.Wait()
		return time.Since(start), nil
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if ierr != nil {
		// The server did not finish; the files it owes show up as
		// incomplete below.
		res.notes = append(res.notes, fmt.Sprintf("%s run %d: %v", s.name, run, ierr))
	}
	errs := 0
	for _, err := range failed {
		if err != nil {
			errs++
			if errs <= 3 {
				res.notes = append(res.notes, fmt.Sprintf("%s run %d: %v", s.name, run, err))
			}
		}
	}
	bad, verr := s.verify(ctx, names, src)
	if verr != nil {
		return verr
	}
	if len(bad) > 0 {
		res.notes = append(res.notes, fmt.Sprintf("%s run %d: %d uploads incomplete; first: %s", s.name, run, len(bad), bad[0]))
	}
	errs = max(errs, len(bad)) // a failed session also leaves no complete file
	res.errors[s.name] += errs
	if len(names) == len(batches) {
		v := float64(len(names)) * float64(src.size) / mb / d.Seconds()
		res.add(s, run, v, fmt.Sprintf("MB/s aggregate, %d errors", errs), d, cpu)
	} else {
		res.add(s, run, float64(len(names))/d.Seconds(), fmt.Sprintf("files/s aggregate, %d errors", errs), d, cpu)
	}
	return nil
}
