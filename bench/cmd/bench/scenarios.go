package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Cipher names as the OpenSSH client takes them.
const (
	aesGCM   = "aes128-gcm@openssh.com"
	chacha20 = "chacha20-poly1305@openssh.com"
)

// side is one of the two servers under test, as the sftp client sees it.
type side struct {
	name      string // "OpenSSH" or "airlock"
	addr      string
	up        login  // for uploads
	uploadDir string // remote directory uploads go to
	dl        login  // for downloads
	dlPath    string // remote path of the download test file
	// verify checks that each uploaded remote name arrived complete and
	// returns the number that did not.
	verify func(ctx context.Context, names []string, size int64, sha string) (int, error)
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
		"-P", portOf(s.addr), "-i", as.key, "-c", cipher,
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
	if run%2 == 1 {
		return []*side{b.openssh, b.airlock}
	}
	return []*side{b.airlock, b.openssh}
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
	samples map[string][]float64 // by side name
	cpu     map[string][]float64 // server CPU seconds per run, by side name
	errors  map[string]int
	notes   []string
}

func newResult() *result {
	return &result{samples: map[string][]float64{}, cpu: map[string][]float64{}, errors: map[string]int{}}
}

// add records one run's value (in unit) and server CPU seconds for s.
func (r *result) add(s *side, run int, v float64, unit string, d time.Duration, cpu float64) {
	r.samples[s.name] = append(r.samples[s.name], v)
	r.cpu[s.name] = append(r.cpu[s.name], cpu)
	logf("  run %d %-7s %8.1f %s (%s, server CPU %.2fs)", run, s.name, v, unit, d.Round(time.Millisecond), cpu)
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
			cpu0 := s.cpu()
			d, err := b.sftp(ctx, s, s.up, cipher, fmt.Sprintf("put %s %s\n", b.big.path, path.Join(s.uploadDir, name)))
			cpu := s.cpu() - cpu0
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
	bad, err := s.verify(ctx, names, src.size, src.sha)
	if err != nil {
		return err
	}
	if bad > 0 {
		return fmt.Errorf("%d of %d uploads did not arrive complete", bad, len(names))
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
			cpu0 := s.cpu()
			d, err := b.sftp(ctx, s, s.dl, aesGCM, fmt.Sprintf("get %s %s\n", s.dlPath, dst))
			cpu := s.cpu() - cpu0
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if err == nil {
				var sha string
				var n int64
				if sha, n, err = fileSHA256(dst); err == nil && (sha != b.big.sha || n != b.big.size) {
					err = fmt.Errorf("downloaded %d bytes with sha256 %s, want %d bytes, %s", n, sha, b.big.size, b.big.sha)
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

// smallFiles: many small puts in one session; files per second.
func (b *bench) scenarioSmallFiles(ctx context.Context) (*result, error) {
	res := newResult()
	n := b.opts.smallFiles
	for run := 1; run <= b.opts.runs; run++ {
		for _, s := range b.order(run) {
			var batch strings.Builder
			names := make([]string, n)
			for i := range names {
				names[i] = fmt.Sprintf("small-%d-%03d.bin", run, i)
				fmt.Fprintf(&batch, "put %s %s\n", b.small.path, path.Join(s.uploadDir, names[i]))
			}
			cpu0 := s.cpu()
			d, err := b.sftp(ctx, s, s.up, aesGCM, batch.String())
			cpu := s.cpu() - cpu0
			if err == nil {
				err = b.verifyAll(ctx, s, names, b.small)
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if err != nil {
				res.fail(s, err)
			} else {
				v := float64(n) / d.Seconds()
				res.add(s, run, v, "files/s", d, cpu)
			}
			if err := b.settle(); err != nil {
				return nil, err
			}
		}
	}
	return res, nil
}

// concurrent: many sessions at once, each uploading one file; aggregate
// MB/s over the wall time from the first start to the last exit, and the
// number of sessions that failed or whose file did not arrive complete.
func (b *bench) scenarioConcurrent(ctx context.Context) (*result, error) {
	res := newResult()
	n := b.opts.sessions
	for run := 1; run <= b.opts.runs; run++ {
		for _, s := range b.order(run) {
			names := make([]string, n)
			failed := make([]error, n)
			cctx, cancel := context.WithTimeout(ctx, b.opts.cmdTimeout)
			var wg sync.WaitGroup
			cpu0 := s.cpu()
			start := time.Now()
			for i := range n {
				names[i] = fmt.Sprintf("conc-%d-%02d.bin", run, i)
				cmd := b.sftpCmd(cctx, s, s.up, aesGCM, fmt.Sprintf("put %s %s\n", b.medium.path, path.Join(s.uploadDir, names[i])))
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				wg.Go(func() {
					if err := cmd.Run(); err != nil {
						failed[i] = fmt.Errorf("session %d: %v: %s", i, err, lastLines(out.String(), 3))
					}
				})
			}
			wg.Wait()
			d := time.Since(start)
			cancel()
			cpu := s.cpu() - cpu0
			if ctx.Err() != nil {
				return nil, ctx.Err()
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
			bad, verr := s.verify(ctx, names, b.medium.size, b.medium.sha)
			if verr != nil {
				return nil, verr
			}
			errs = max(errs, bad) // a failed session also leaves no complete file
			res.errors[s.name] += errs
			v := float64(n) * float64(b.medium.size) / mb / d.Seconds()
			res.add(s, run, v, fmt.Sprintf("MB/s aggregate, %d errors", errs), d, cpu)
			if err := b.settle(); err != nil {
				return nil, err
			}
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
// started airlock whose peak RSS (VmHWM) is read after the upload.
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
	tree, err := writeAirlockTree(filepath.Join(dir, "airlock"), vg.url(bucket), b.egressDir, b.client, b.dlClient, vg.env())
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
			s := &side{name: "airlock", addr: tree.sftpAddr}
			name := fmt.Sprintf("s3-%d-%d.bin", size, run)
			d, err := b.sftp(ctx, s, login{uploader, b.client.path}, aesGCM, fmt.Sprintf("put %s %s\n", src.path, name))
			rss, rerr := srv.peakRSS()
			if err == nil {
				err = rerr
			}
			if err == nil {
				var trs map[string]transfer
				if trs, err = tree.transfers(ctx, b.tools.airlock); err == nil {
					if tr := trs["/"+name]; tr.State != "received" || tr.Size != size || tr.SHA256 != src.sha {
						err = fmt.Errorf("transfer %s: state %q size %d sha256 %s (error %q); want received, %d, %s",
							name, tr.State, tr.Size, tr.SHA256, tr.Error, size, src.sha)
					}
				}
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
				logf("  run %d %-7s %8.1f MB/s, peak RSS %.1f MiB (%s)", run, humanSize(size), v, float64(rss)/(1<<20), d.Round(time.Millisecond))
			}
			if err := removeFiles(filepath.Join(vg.root, bucket)); err != nil {
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
