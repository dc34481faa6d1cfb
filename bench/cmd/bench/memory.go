package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/sync/errgroup"
)

// Scenario 10, airlock only: what many sessions cost in memory.
const (
	idleSessions  = 1000
	manyUploads   = 200
	defaultBudget = 512 << 20 // limits.upload_memory's default, which the tree keeps
)

type memoryResult struct {
	perSession []float64 // KiB of RSS per idle session beyond the first
	idleRSS    []float64 // MiB with every idle session open
	uploadPeak []float64 // MiB, VmHWM over the uploads at once
	errors     int
	notes      []string
	skipped    string
}

func (b *bench) memoryStep(ctx context.Context) (*memoryResult, error) {
	if !b.opts.selected("memory") {
		return &memoryResult{skipped: "not selected (-only)"}, nil
	}
	if err := b.checkSpace(2*manyUploads*b.medium.size+1<<30, "the memory scenario"); err != nil {
		return &memoryResult{skipped: "skipped: " + err.Error()}, nil
	}
	logf("scenario: %d idle sessions, then %d uploads of %s at once (airlock only)", idleSessions, manyUploads, humanSize(b.medium.size))
	res := &memoryResult{}
	tree, err := writeAirlockTree(filepath.Join(b.dir, "memorybench"), treeSpec{perIP: idleSessions + 100}, b.egressDir, b.client, b.dlClient)
	if err != nil {
		return nil, err
	}
	signer, err := loadSigner(b.client.path)
	if err != nil {
		return nil, err
	}
	for run := 1; run <= min(b.opts.runs, 2); run++ {
		if err := b.idleRun(ctx, tree, signer, run, res); err != nil {
			return nil, err
		}
		if err := b.uploadsRun(ctx, tree, signer, run, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func loadSigner(path string) (ssh.Signer, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ssh.ParsePrivateKey(pem)
}

// sftpSession is one logged-in SFTP session of the bench's uploader.
type sftpSession struct {
	conn   *ssh.Client
	client *sftp.Client
}

func dialSFTP(addr string, signer ssh.Signer) (*sftpSession, error) {
	conn, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{User: uploader, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 30 * time.Second})
	if err != nil {
		return nil, err
	}
	client, err := sftp.NewClient(conn)
	if err == nil {
		_, err = client.Getwd() // one request answered: the session is served
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return &sftpSession{conn: conn, client: client}, nil
}

// close ends the session; the bench has nothing to lose in it.
func (s *sftpSession) close() {
	_ = s.client.Close()
	_ = s.conn.Close()
}

// openSessions logs n sessions in, 32 at a time (below the limits on
// unauthenticated connections).
func openSessions(ctx context.Context, addr string, signer ssh.Signer, n int) ([]*sftpSession, error) {
	sessions := make([]*sftpSession, n)
	g, _ := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for i := range n {
		g.Go(func() (err error) {
			sessions[i], err = dialSFTP(addr, signer)
			return err
		})
	}
	err := g.Wait()
	if err != nil {
		closeSessions(sessions)
	}
	return sessions, err
}

func closeSessions(sessions []*sftpSession) {
	for _, s := range sessions {
		if s != nil {
			s.close()
		}
	}
}

// idleRun opens one session on a fresh airlock, reads its RSS, opens
// idleSessions-1 more, lets them idle and reads it again.
func (b *bench) idleRun(ctx context.Context, tree *airlockTree, signer ssh.Signer, run int, res *memoryResult) error {
	srv, err := startAirlock(b.tools, tree)
	if err != nil {
		return err
	}
	defer srv.stop()
	first, err := openSessions(ctx, tree.sftpAddr, signer, 1)
	if err != nil {
		return b.memoryFailed(res, srv, fmt.Sprintf("idle run %d", run), err)
	}
	defer closeSessions(first)
	base, err := settledRSS(ctx, srv)
	if err != nil {
		return err
	}
	rest, err := openSessions(ctx, tree.sftpAddr, signer, idleSessions-1)
	if err != nil {
		return b.memoryFailed(res, srv, fmt.Sprintf("idle run %d", run), err)
	}
	defer closeSessions(rest)
	all, err := settledRSS(ctx, srv)
	if err != nil {
		return err
	}
	per := float64(all-base) / 1024 / (idleSessions - 1)
	res.perSession = append(res.perSession, per)
	res.idleRSS = append(res.idleRSS, float64(all)/(1<<20))
	logf("  run %d: RSS %.1f MiB with 1 session, %.1f MiB with %d: %.1f KiB a session", run,
		float64(base)/(1<<20), float64(all)/(1<<20), idleSessions, per)
	return nil
}

// settledRSS reads RSS once the process has been left alone for a few
// seconds (the runtime returns freed memory in the background), the
// lowest of three readings a second apart.
func settledRSS(ctx context.Context, srv *airlockServer) (int64, error) {
	var low int64
	for i := range 4 {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(time.Second):
		}
		if i == 0 {
			continue
		}
		v, err := srv.rss()
		if err != nil {
			return 0, err
		}
		if low == 0 || v < low {
			low = v
		}
	}
	return low, nil
}

// uploadsRun starts manyUploads sessions on a fresh airlock and has them
// all upload the medium file at once, then reads airlock's peak RSS.
func (b *bench) uploadsRun(ctx context.Context, tree *airlockTree, signer ssh.Signer, run int, res *memoryResult) error {
	srv, err := startAirlock(b.tools, tree)
	if err != nil {
		return err
	}
	defer srv.stop()
	sessions, err := openSessions(ctx, tree.sftpAddr, signer, manyUploads)
	if err != nil {
		return b.memoryFailed(res, srv, fmt.Sprintf("uploads run %d", run), err)
	}
	defer closeSessions(sessions)
	names := make([]string, manyUploads)
	var wg sync.WaitGroup
	errs := make([]error, manyUploads)
	start := time.Now()
	for i, s := range sessions {
		names[i] = fmt.Sprintf("mem-%d-%03d.bin", run, i)
		wg.Go(func() { errs[i] = upload(s.client, b.medium.path, names[i]) })
	}
	wg.Wait()
	took := time.Since(start)
	peak, err := srv.peakRSS()
	if err != nil {
		return err
	}
	if err := errors.Join(errs...); err != nil {
		return b.memoryFailed(res, srv, fmt.Sprintf("uploads run %d", run), err)
	}
	if err := tree.waitPipeline(ctx, b.opts.pipelineTimeout); err != nil {
		return err
	}
	bad, err := tree.verifyDelivered(ctx, b.tools.airlock, names, b.medium)
	if err != nil {
		return err
	}
	if len(bad) > 0 {
		return b.memoryFailed(res, srv, fmt.Sprintf("uploads run %d", run), fmt.Errorf("%d files not delivered whole; first: %s", len(bad), bad[0]))
	}
	res.uploadPeak = append(res.uploadPeak, float64(peak)/(1<<20))
	logf("  run %d: %d uploads of %s at once in %s: peak RSS %.1f MiB", run, manyUploads, humanSize(b.medium.size),
		took.Round(time.Millisecond), float64(peak)/(1<<20))
	return tree.clean()
}

func upload(c *sftp.Client, src, name string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := c.Create("/" + name)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close() // the copy's error says more
		return fmt.Errorf("%s: %w", name, err)
	}
	return out.Close()
}

// memoryFailed records a failed run; the bench goes on.
func (b *bench) memoryFailed(res *memoryResult, srv *airlockServer, what string, err error) error {
	res.errors++
	res.notes = append(res.notes, fmt.Sprintf("10. %s: %v", what, err))
	logf("  %s FAILED: %v\n%s", what, err, lastLines(srv.tail(), 10))
	return nil
}

// memoryRows are scenario 10.
func (rep *report) memoryRows() []row {
	m := rep.memory
	if m == nil || m.skipped != "" {
		why := "skipped"
		if m != nil {
			why = m.skipped
		}
		return []row{{"10. memory: idle sessions, uploads at once", "—", why, "—", "—", "—"}}
	}
	per, peak := median(m.perSession), median(m.uploadPeak)
	limit := float64(defaultBudget>>20) + 64
	return []row{
		{fmt.Sprintf("10a. %d idle sessions: RSS (MiB)", idleSessions), "—", cell(m.idleRSS, 1), "—", "—", "—"},
		{"10b. idle session: RSS each beyond the first (KiB)", "—", cell(m.perSession, 1), "—", "≤ 64 KiB", yesNo(per <= 64 && m.errors == 0)},
		{fmt.Sprintf("10c. %d uploads of %s at once: peak RSS (MiB)", manyUploads, humanSize(rep.opts.sessionSize)), "—", cell(m.uploadPeak, 1), "—",
			fmt.Sprintf("≤ upload_memory + 64 MiB (%.0f)", limit), yesNo(peak <= limit && m.errors == 0)},
	}
}
