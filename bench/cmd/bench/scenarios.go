package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Cipher and MAC names as the OpenSSH client takes them. aesCTR is what
// clients without AEAD ciphers use with airlock's compatible profile;
// etmMAC is the MAC every session asks for, used only with aesCTR (the AEAD
// ciphers carry their own).
const (
	aesGCM   = "aes128-gcm@openssh.com"
	chacha20 = "chacha20-poly1305@openssh.com"
	aesCTR   = "aes128-ctr"
	etmMAC   = "hmac-sha2-256-etm@openssh.com"
)

// side is one of the two servers under test, as the sftp client sees it.
type side struct {
	name      string // "OpenSSH" or "airlock"
	addr      string
	up        login  // for uploads
	uploadDir string // remote directory uploads go to
	dl        login  // for downloads
	dlPath    string // remote path of the download test file
	// idle waits until the server has finished the work a session left
	// it: sshd reaps its per-connection processes, airlock's pipeline
	// scans and delivers every upload. Its CPU time is read after that,
	// and the next run starts after that, so that no background work of
	// one run overlaps another.
	idle func(ctx context.Context) error
	// verify checks that each uploaded remote name arrived complete (for
	// airlock: was delivered) and describes each that did not.
	verify func(ctx context.Context, names []string, src srcFile) ([]string, error)
	// clean deletes what uploads left, between runs.
	clean func() error
	// cpu is the CPU time the server has used so far, in seconds.
	cpu func() float64
}

// login is a user name and the private key it logs in with.
type login struct{ user, key string }

// srcFile is a generated source file with its digest.
type srcFile struct {
	path string
	size int64
	sha  string
}

// makeSource writes size pseudo-random (incompressible) bytes.
func makeSource(p string, size int64, seed byte) (srcFile, error) {
	f, err := os.Create(p)
	if err != nil {
		return srcFile{}, err
	}
	defer f.Close()
	h := sha256.New()
	src := rand.NewChaCha8([32]byte{seed, byte(size), byte(size >> 8), byte(size >> 16), byte(size >> 24), byte(size >> 32)})
	w := io.MultiWriter(f, h)
	if _, err := io.CopyN(w, src, size); err != nil {
		return srcFile{}, err
	}
	if err := f.Close(); err != nil {
		return srcFile{}, err
	}
	return srcFile{path: p, size: size, sha: hex.EncodeToString(h.Sum(nil))}, nil
}

// checkFile describes how the file at p differs from src, or returns "".
func checkFile(p string, src srcFile) string {
	sha, n, err := fileSHA256(p)
	switch {
	case err != nil:
		return err.Error()
	case n != src.size || sha != src.sha:
		return fmt.Sprintf("%s: %d bytes with sha256 %s, want %d bytes, %s", p, n, sha, src.size, src.sha)
	}
	return ""
}

func fileSHA256(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

// sftpRun is one OpenSSH sftp client session in batch mode.
func (b *bench) sftpCmd(ctx context.Context, s *side, as login, cipher, batch string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, b.tools.sftp, "-b", "-",
		"-P", portOf(s.addr), "-i", as.key, "-c", cipher, "-o", "MACs="+etmMAC,
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR",
		"-o", "Compression=no", as.user+"@127.0.0.1")
	cmd.Stdin = strings.NewReader(batch)
	return cmd
}

// sftp runs one session and times it from start to exit.
func (b *bench) sftp(ctx context.Context, s *side, as login, cipher, batch string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, b.opts.cmdTimeout)
	defer cancel()
	cmd := b.sftpCmd(ctx, s, as, cipher, batch)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return d, fmt.Errorf("sftp to %s: %v\n%s", s.name, err, lastLines(out.String(), 10))
	}
	return d, nil
}

// measure runs one timed session on s and waits for s to go idle. The
// duration is the session's alone (what a client waits for); the CPU time
// also covers the work the session left behind, which for airlock is
// scanning and delivering the uploads.
func (b *bench) measure(ctx context.Context, s *side, session func() (time.Duration, error)) (time.Duration, cpuUse, error) {
	cpu0 := s.cpu()
	d, err := session()
	atEnd := s.cpu()
	// Waited for even after a failed session: whatever it did upload is
	// still being delivered.
	if ierr := s.idle(ctx); ierr != nil {
		err = errors.Join(err, ierr)
	}
	return d, cpuUse{session: atEnd - cpu0, total: s.cpu() - cpu0}, err
}

// cpuUse is a server's CPU time (user + system seconds) for one run: up to
// the end of the sftp session, and in all once the server is idle again
// (for airlock, once its pipeline has delivered the run's files).
type cpuUse struct{ session, total float64 }

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// order alternates which side goes first: OpenSSH first in odd runs,
// airlock first in even ones.
func (b *bench) order(run int) []*side {
	return alternate(run, b.openssh, b.airlock)
}

// alternate is first, second in odd runs and second, first in even ones.
func alternate[T any](run int, first, second T) []T {
	if run%2 == 1 {
		return []T{first, second}
	}
	return []T{second, first}
}

// settle cleans both sides and flushes dirty pages, so that one run's
// write-back does not slow the next.
func (b *bench) settle() error {
	for _, s := range []*side{b.openssh, b.airlock} {
		if err := s.clean(); err != nil {
			return err
		}
	}
	syscall.Sync()
	return nil
}

// result collects the samples of one measure for both sides.
type result struct {
	samples    map[string][]float64 // by side name
	cpu        map[string][]float64 // server CPU seconds per run, by side name
	sessionCPU map[string][]float64 // the same, up to the end of the session
	errors     map[string]int
	notes      []string
}

func newResult() *result {
	return &result{samples: map[string][]float64{}, cpu: map[string][]float64{}, sessionCPU: map[string][]float64{}, errors: map[string]int{}}
}

// add records one run's value (in unit) and server CPU seconds for s.
func (r *result) add(s *side, run int, v float64, unit string, d time.Duration, cpu cpuUse) {
	r.samples[s.name] = append(r.samples[s.name], v)
	r.cpu[s.name] = append(r.cpu[s.name], cpu.total)
	r.sessionCPU[s.name] = append(r.sessionCPU[s.name], cpu.session)
	logf("  run %d %-7s %8.1f %s (%s, server CPU %.2fs, %.2fs of it by the session's end)", run, s.name, v, unit, d.Round(time.Millisecond), cpu.total, cpu.session)
}

func (r *result) fail(s *side, err error) {
	r.errors[s.name]++
	r.notes = append(r.notes, fmt.Sprintf("%s: %v", s.name, err))
	logf("  %s FAILED: %v", s.name, err)
}

const mb = 1e6 // throughput is reported in SI megabytes per second

// upload: one big file, one session, per cipher.
func (b *bench) scenarioUpload(ctx context.Context, cipher, tag string) (*result, error) {
	res := newResult()
	for run := 1; run <= b.opts.runs; run++ {
		for _, s := range b.order(run) {
			name := fmt.Sprintf("up-%s-%d.bin", tag, run)
			d, cpu, err := b.measure(ctx, s, func() (time.Duration, error) {
				return b.sftp(ctx, s, s.up, cipher, fmt.Sprintf("put %s %s\n", b.big.path, path.Join(s.uploadDir, name)))
			})
			if err == nil {
				err = b.verifyAll(ctx, s, []string{name}, b.big)
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if err != nil {
				res.fail(s, err)
			} else {
				v := float64(b.big.size) / mb / d.Seconds()
				res.add(s, run, v, "MB/s", d, cpu)
			}
			if err := b.settle(); err != nil {
				return nil, err
			}
		}
	}
	return res, nil
}

func (b *bench) verifyAll(ctx context.Context, s *side, names []string, src srcFile) error {
	bad, err := s.verify(ctx, names, src)
	if err != nil {
		return err
	}
	if len(bad) > 0 {
		return fmt.Errorf("%d of %d uploads did not arrive complete; first: %s", len(bad), len(names), bad[0])
	}
	return nil
}

// download: the big file from /download.
func (b *bench) scenarioDownload(ctx context.Context) (*result, error) {
	res := newResult()
	dst := filepath.Join(b.dir, "dl", "big.bin")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return nil, err
	}
	for run := 1; run <= b.opts.runs; run++ {
		for _, s := range b.order(run) {
			d, cpu, err := b.measure(ctx, s, func() (time.Duration, error) {
				return b.sftp(ctx, s, s.dl, aesGCM, fmt.Sprintf("get %s %s\n", s.dlPath, dst))
			})
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if err == nil {
				if bad := checkFile(dst, b.big); bad != "" {
					err = fmt.Errorf("download: %s", bad)
				}
			}
			if err != nil {
				res.fail(s, err)
			} else {
				v := float64(b.big.size) / mb / d.Seconds()
				res.add(s, run, v, "MB/s", d, cpu)
			}
			os.Remove(dst)
			if err := b.settle(); err != nil {
				return nil, err
			}
		}
	}
	return res, nil
}

// putBatch is an sftp batch that uploads src n times into s's upload
// directory as <prefix>-NNN.bin, and those names.
func putBatch(s *side, src srcFile, prefix string, n int) ([]string, string) {
	var batch strings.Builder
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%03d.bin", prefix, i)
		fmt.Fprintf(&batch, "put %s %s\n", src.path, path.Join(s.uploadDir, names[i]))
	}
	return names, batch.String()
}

// smallFiles: many small puts in one session; files per second.
func (b *bench) scenarioSmallFiles(ctx context.Context) (*result, error) {
	res := newResult()
	n := b.opts.smallFiles
	sessions, logins := map[string][]float64{}, map[string][]float64{}
	for run := 1; run <= b.opts.runs; run++ {
		for _, s := range b.order(run) {
			names, batch := putBatch(s, b.small, fmt.Sprintf("small-%d", run), n)
			d, cpu, err := b.measure(ctx, s, func() (time.Duration, error) {
				return b.sftp(ctx, s, s.up, aesGCM, batch)
			})
			if err == nil {
				err = b.verifyAll(ctx, s, names, b.small)
			}
			var login time.Duration
			if err == nil {
				login, err = b.sftp(ctx, s, s.up, aesGCM, "pwd\n")
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if err != nil {
				res.fail(s, err)
			} else {
				v := float64(n) / d.Seconds()
				res.add(s, run, v, "files/s", d, cpu)
				sessions[s.name] = append(sessions[s.name], d.Seconds())
				logins[s.name] = append(logins[s.name], login.Seconds())
			}
			if err := b.settle(); err != nil {
				return nil, err
			}
		}
	}
	res.notes = append(res.notes, perFileNote(n, sessions, logins, b.openssh.name, b.airlock.name))
	return res, nil
}

// perFileNote splits the small-file sessions into the login, timed by a
// session that only logs in and runs pwd, and the files: a slow login
// hides what each file costs.
func perFileNote(n int, sessions, logins map[string][]float64, sides ...string) string {
	parts := make([]string, 0, len(sides))
	for _, side := range sides {
		if len(sessions[side]) == 0 {
			continue
		}
		login := median(logins[side])
		parts = append(parts, fmt.Sprintf("%s: login and exit %.0f ms, then %.2f ms a file", side,
			1000*login, 1000*(median(sessions[side])-login)/float64(n)))
	}
	return "3. per file, without the login (medians; the login timed by a session that runs only `pwd`): " + strings.Join(parts, "; ") + "."
}

// latencyResult is scenario 6, airlock only: the pipeline's files/s and
// CPU per run in result, and each file's time through the pipeline.
type latencyResult struct {
	*result
	ms     []float64            // landed → delivered of every file of every run, in milliseconds
	phases map[string][]float64 // the same split by phase (see pipelineTimes), in milliseconds
}

// scenarioLatency uploads opts.latencyFiles files of 1 MiB one after the
// other in one session, and takes each file's time from landing
// (`received`) to delivery (`delivered`) from its audit events. The
// pipeline works while later files are still uploading, as it would for
// a supplier.
func (b *bench) scenarioLatency(ctx context.Context) (*latencyResult, error) {
	res := &latencyResult{result: newResult(), phases: map[string][]float64{}}
	s := b.airlock
	for run := 1; run <= b.opts.runs; run++ {
		names, batch := putBatch(s, b.mib, fmt.Sprintf("lat-%d", run), b.opts.latencyFiles)
		_, cpu, err := b.measure(ctx, s, func() (time.Duration, error) {
			return b.sftp(ctx, s, s.up, aesGCM, batch)
		})
		if err == nil {
			err = b.verifyAll(ctx, s, names, b.mib)
		}
		var pt pipelineTimes
		if err == nil {
			pt, err = b.airTree.pipelineTimes(ctx, b.tools.airlock, names)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			res.fail(s, err)
		} else {
			res.ms = append(res.ms, pt.total...)
			for ph, v := range pt.phases {
				res.phases[ph] = append(res.phases[ph], v...)
			}
			res.add(s, run, float64(len(names))/pt.span.Seconds(), fmt.Sprintf("files/s through the pipeline, landed → delivered p50 %.0f ms, p99 %.0f ms",
				percentile(pt.total, 50), percentile(pt.total, 99)), pt.span, cpu)
		}
		if err := b.settle(); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// s3Result is the S3 landing scenario: airlock only.
type s3Result struct {
	sizes   []int64
	mbps    map[int64][]float64
	rss     map[int64][]float64 // MiB
	errors  int
	notes   []string
	skipped string // why the scenario did not run
}

// scenarioS3: uploads into a versitygw landing store, each with a freshly
// started airlock whose peak RSS (VmHWM) is read once the upload has been
// delivered (to a local destination), so that it covers the delivery's
// reading from S3 too.
func (b *bench) scenarioS3(ctx context.Context) (*s3Result, error) {
	res := &s3Result{sizes: []int64{b.opts.s3Small, b.opts.s3Large}, mbps: map[int64][]float64{}, rss: map[int64][]float64{}}
	dir := filepath.Join(b.dir, "s3bench")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	const bucket = "landing"
	vg, err := startVersity(b.tools, dir, bucket)
	if err != nil {
		return nil, err
	}
	defer vg.stop()
	tree, err := writeAirlockTree(filepath.Join(dir, "airlock"), treeSpec{landing: vg.url(bucket), env: vg.env()}, b.egressDir, b.client, b.dlClient)
	if err != nil {
		return nil, err
	}
	srcs := map[int64]srcFile{}
	for i, size := range res.sizes {
		logf("  writing a %s source file", humanSize(size))
		if srcs[size], err = makeSource(filepath.Join(dir, fmt.Sprintf("s3src-%d.bin", size)), size, byte(10+i)); err != nil {
			return nil, err
		}
	}
	defer func() {
		for _, s := range srcs {
			os.Remove(s.path)
		}
	}()
	for run := 1; run <= b.opts.runs; run++ {
		sizes := res.sizes
		if run%2 == 0 {
			sizes = []int64{sizes[1], sizes[0]}
		}
		for _, size := range sizes {
			src := srcs[size]
			srv, err := startAirlock(b.tools, tree)
			if err != nil {
				return nil, err
			}
			s := b.airlockSide(tree, srv)
			name := fmt.Sprintf("s3-%d-%d.bin", size, run)
			var upRSS int64
			d, cpu, err := b.measure(ctx, s, func() (time.Duration, error) {
				d, err := b.sftp(ctx, s, s.up, aesGCM, fmt.Sprintf("put %s %s\n", src.path, name))
				upRSS, _ = srv.peakRSS()
				return d, err
			})
			rss, rerr := srv.peakRSS()
			if err == nil {
				err = rerr
			}
			if err == nil {
				err = b.verifyAll(ctx, s, []string{name}, src)
			}
			srv.stop()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if err != nil {
				res.errors++
				res.notes = append(res.notes, fmt.Sprintf("%s: %v", humanSize(size), err))
				logf("  run %d %s FAILED: %v\n%s", run, humanSize(size), err, lastLines(srv.tail(), 10))
			} else {
				v := float64(size) / mb / d.Seconds()
				res.mbps[size] = append(res.mbps[size], v)
				res.rss[size] = append(res.rss[size], float64(rss)/(1<<20))
				logf("  run %d %-7s %8.1f MB/s, peak RSS %.1f MiB (%.1f MiB when the upload ended) (%s, server CPU %.2fs, %.2fs of it by the session's end)",
					run, humanSize(size), v, float64(rss)/(1<<20), float64(upRSS)/(1<<20), d.Round(time.Millisecond), cpu.total, cpu.session)
			}
			if err := errors.Join(s.clean(), removeFiles(filepath.Join(vg.root, bucket))); err != nil {
				return nil, err
			}
			syscall.Sync()
		}
	}
	return res, nil
}

// humanSize prints a size the way the sizes were asked for: IEC when it is
// a whole number of MiB/GiB, SI otherwise.
func humanSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1e9 && n%1e8 == 0:
		return strings.TrimSuffix(fmt.Sprintf("%.1f", float64(n)/1e9), ".0") + " GB"
	case n >= 1e6 && n%1e5 == 0:
		return strings.TrimSuffix(fmt.Sprintf("%.1f", float64(n)/1e6), ".0") + " MB"
	}
	return fmt.Sprintf("%d bytes", n)
}
