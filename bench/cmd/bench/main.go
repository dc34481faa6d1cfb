// Command bench measures airlock against OpenSSH's own SFTP server (sshd
// with internal-sftp in a chroot) on 127.0.0.1, with the OpenSSH sftp
// client driving both, and prints a Markdown table of the results with the
// targets of issue 5 (upload and download ≥ 0.9 × OpenSSH, zero errors at
// 50 concurrent sessions, bounded memory for a 5 GB upload into S3,
// landed → delivered p50 ≤ 250 ms for 1 MiB files), and, for issue 25,
// the same concurrent sessions through HAProxy to one airlock node and to
// three on one Postgres and one S3 landing store, and, for issue 21, a push
// dataset's object streamed to an S3 target with bounded memory, and,
// for issue 22, routes from S3 to an HTTPS receiver (decrypt → compress,
// and flag batches).
//
// Every airlock upload goes on through the pipeline (builtin scanner, a
// local destination): a run counts once its files are delivered, and the
// next run starts only when airlock has no job left, so that its
// background work never overlaps the other server's run.
//
//	go run ./bench/cmd/bench [-quick] [-runs N] [-size 1GiB] [-out docs/benchmarks.md | -only small,latency]
//
// -only runs some of the scenarios (aes, chacha, ctr, download, small, sessions,
// latency, s3, cluster, push, route, memory, release, smallpar) while iterating on them; it does not go with -out, which
// must always hold a full run.
//
// `make bench` installs the peers (scripts/install-peers.sh openssh-server;
// HAProxy, Postgres and versitygw come with it) and runs it with
// -out docs/benchmarks.md. It must run as root: sshd only chroots as root.
// Everything it starts listens on 127.0.0.1 on free ports and lives in one
// temporary directory, removed at the end.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/airlock-gw/airlock/internal/config"
)

type options struct {
	runs       int
	size       int64 // upload and download file
	smallFiles int
	smallSize  int64
	// smallSessions sessions at once put smallPerSession small files each.
	smallSessions, smallPerSession int
	sessions                       int
	sessionSize                    int64
	// latencyFiles is the number of 1 MiB files of the latency scenario.
	latencyFiles int
	s3Small      int64
	releaseSize  int64 // the file of the release scenario (11)
	s3Large      int64
	noS3         bool
	only         []string // scenarios to run (see scenarioNames); none: all
	micro        bool
	out          string
	tmp          string
	keep         bool
	quick        bool
	timeout      time.Duration
	cmdTimeout   time.Duration
	// pipelineTimeout bounds the wait for airlock to deliver one run's
	// uploads.
	pipelineTimeout time.Duration
}

// scenarioNames are the names -only takes, in the order the scenarios run.
var scenarioNames = []string{"aes", "chacha", "ctr", "download", "small", "smallpar", "sessions", "latency", "s3", "cluster", "push", "route", "memory", "release"}

// selected says whether the run includes scenario name.
func (o options) selected(name string) bool {
	return len(o.only) == 0 || slices.Contains(o.only, name)
}

// bigFile says whether a selected scenario moves the big file (1a-1c, 2).
func (o options) bigFile() bool {
	return o.selected("aes") || o.selected("chacha") || o.selected("ctr") || o.selected("download")
}

// parseOnly checks -only's comma-separated scenario names.
func parseOnly(s string) ([]string, error) {
	var names []string
	for name := range strings.SplitSeq(s, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		if !slices.Contains(scenarioNames, name) {
			return nil, fmt.Errorf("unknown scenario %q; valid: %s", name, strings.Join(scenarioNames, ", "))
		}
		names = append(names, name)
	}
	return names, nil
}

// sizeFlag is a flag taking sizes the way airlock.yaml does ("1GiB", "5GB").
type sizeFlag struct{ v *int64 }

func (f sizeFlag) String() string {
	if f.v == nil {
		return ""
	}
	return humanSize(*f.v)
}

func (f sizeFlag) Set(s string) error {
	n, err := config.ParseSize(s)
	if err != nil {
		return err
	}
	if n <= 0 {
		return errors.New("size must be positive")
	}
	*f.v = int64(n)
	return nil
}

func parseFlags() options {
	o := options{
		runs: 5, size: 1 << 30, smallFiles: 100, smallSize: 64 << 10, smallSessions: 8, smallPerSession: 300, sessions: 50, sessionSize: 20 << 20, latencyFiles: 100,
		s3Small: 1e9, s3Large: 5e9, releaseSize: 2 << 30, micro: true, timeout: 90 * time.Minute, cmdTimeout: 15 * time.Minute, pipelineTimeout: 10 * time.Minute,
	}
	flag.IntVar(&o.runs, "runs", o.runs, "runs per scenario and server, alternating OpenSSH and airlock")
	flag.Var(sizeFlag{&o.size}, "size", "size of the upload and download file")
	flag.IntVar(&o.smallFiles, "small-files", o.smallFiles, "files in the small-files session")
	flag.Var(sizeFlag{&o.smallSize}, "small-size", "size of each small file")
	flag.IntVar(&o.smallSessions, "small-sessions", o.smallSessions, "sessions at once putting small files (3b)")
	flag.IntVar(&o.smallPerSession, "small-per-session", o.smallPerSession, "small files each of those sessions puts (3b)")
	flag.IntVar(&o.sessions, "sessions", o.sessions, "concurrent sessions")
	flag.Var(sizeFlag{&o.sessionSize}, "session-size", "upload size of each concurrent session")
	flag.IntVar(&o.latencyFiles, "latency-files", o.latencyFiles, "1 MiB files uploaded one after the other for the landed → delivered latency")
	flag.Var(sizeFlag{&o.s3Small}, "s3-small", "smaller upload into the S3 landing store, and smaller push (8) and route object (9)")
	flag.Var(sizeFlag{&o.s3Large}, "s3-large", "larger upload into the S3 landing store, and larger push (8) and route object (9)")
	flag.Var(sizeFlag{&o.releaseSize}, "release-size", "file released to S3 by airlock release and rclone copy (11)")
	flag.BoolVar(&o.noS3, "no-s3", false, "skip the S3 scenarios: the S3 landing (5), the push to an S3 target (8) and the routes from one (9)")
	flag.Func("only", "run only these scenarios, comma-separated: aes (1a), chacha (1b), ctr (1c), download (2), small (3a), smallpar (3b), sessions (4), latency (6), s3 (5), cluster (7), push (8), route (9), memory (10), release (11); default: all; not with -out",
		func(s string) (err error) {
			o.only, err = parseOnly(s)
			return err
		})
	flag.BoolVar(&o.micro, "micro", o.micro, "also run the Go micro-benchmarks of internal/sftpd")
	flag.StringVar(&o.out, "out", "", "also write the report to this Markdown file (e.g. docs/benchmarks.md)")
	flag.StringVar(&o.tmp, "tmp", "", "parent of the temporary directory; every component must be root-owned and not group/world-writable (sshd's chroot rule); default: $TMPDIR if it qualifies, else the user cache directory")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (logs, configs) instead of removing it")
	flag.BoolVar(&o.quick, "quick", false, "check the harness: 256 MiB files, 200 MB and 1 GB into S3, 1 run (explicit flags win)")
	flag.DurationVar(&o.timeout, "timeout", o.timeout, "bound on the whole run")
	flag.DurationVar(&o.cmdTimeout, "cmd-timeout", o.cmdTimeout, "bound on one sftp session")
	flag.DurationVar(&o.pipelineTimeout, "pipeline-timeout", o.pipelineTimeout, "bound on waiting for airlock to scan and deliver one run's uploads")
	flag.Parse()
	if o.quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["runs"] {
			o.runs = 1
		}
		if !set["size"] {
			o.size = 256 << 20
		}
		if !set["s3-small"] {
			o.s3Small = 200e6
		}
		if !set["s3-large"] {
			o.s3Large = 1e9
		}
		if !set["release-size"] {
			o.releaseSize = 256 << 20
		}
	}
	if o.runs < 1 || o.sessions < 1 || o.smallFiles < 1 || o.latencyFiles < 1 || o.smallSessions < 1 || o.smallPerSession < 2 {
		fmt.Fprintln(os.Stderr, "bench: -runs, -sessions, -small-files, -small-sessions and -latency-files must be at least 1, -small-per-session 2")
		os.Exit(2)
	}
	if len(o.only) > 0 && o.out != "" {
		fmt.Fprintln(os.Stderr, "bench: -only does not go with -out: a partial run would overwrite the full report")
		os.Exit(2)
	}
	return o
}

func logf(format string, args ...any) {
	// format goes to Fprintf as it is, so that vet checks logf's callers.
	fmt.Fprintf(os.Stderr, format, args...)
	fmt.Fprintln(os.Stderr)
}

// toolset is the programs the bench runs.
type toolset struct {
	sftp, keygen, sshd, versitygw, haproxy, nginx, rclone, airlock string
}

type bench struct {
	opts      options
	tools     *toolset
	dir       string  // the temporary directory
	client    keyPair // OpenSSH's user and airlock's uploader
	dlClient  keyPair // airlock's egress supplier (airlock refuses a key shared by two suppliers)
	big       srcFile // upload and download
	small     srcFile
	medium    srcFile // concurrent sessions
	mib       srcFile // latency
	egressDir string

	openssh, airlock *side
	sshd             *sshdServer
	air              *airlockServer
	airTree          *airlockTree

	cleanups []func()
}

func main() {
	opts := parseFlags()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, opts.timeout)
	defer cancel()
	b := &bench{opts: opts}
	err := b.run(ctx)
	for i := len(b.cleanups) - 1; i >= 0; i-- {
		b.cleanups[i]()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func (b *bench) defer_(f func()) { b.cleanups = append(b.cleanups, f) }

func (b *bench) run(ctx context.Context) error {
	began := time.Now()
	if os.Geteuid() != 0 {
		return errors.New("run as root: sshd chroots (ChrootDirectory) only when started as root")
	}
	if err := b.findTools(); err != nil {
		return err
	}
	if err := b.makeDir(); err != nil {
		return err
	}
	if err := b.checkSpace(b.coreNeed(), "the OpenSSH/airlock scenarios"); err != nil {
		return err
	}

	logf("building airlock")
	b.tools.airlock = filepath.Join(b.dir, "airlock")
	build := exec.CommandContext(ctx, "go", "build", "-o", b.tools.airlock, "./cmd/airlock")
	build.Dir = moduleRoot()
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build airlock: %v\n%s", err, out)
	}

	var err error
	if b.client, err = keygen(b.tools.keygen, filepath.Join(b.dir, "client_ed25519"), "bench-client"); err != nil {
		return err
	}
	if b.dlClient, err = keygen(b.tools.keygen, filepath.Join(b.dir, "client2_ed25519"), "bench-client-dl"); err != nil {
		return err
	}
	logf("writing source files")
	// Only scenarios 1 and 2 use the big file: without them, writing it
	// would cost time and disk for nothing.
	if b.opts.bigFile() {
		if b.big, err = makeSource(filepath.Join(b.dir, "src-big.bin"), b.opts.size, 1); err != nil {
			return err
		}
	}
	if b.small, err = makeSource(filepath.Join(b.dir, "src-small.bin"), b.opts.smallSize, 2); err != nil {
		return err
	}
	if b.medium, err = makeSource(filepath.Join(b.dir, "src-medium.bin"), b.opts.sessionSize, 3); err != nil {
		return err
	}
	if b.mib, err = makeSource(filepath.Join(b.dir, "src-mib.bin"), latencySize, 4); err != nil {
		return err
	}
	if err := b.startServers(); err != nil {
		return err
	}

	rep := &report{opts: b.opts, machine: b.machine()}
	type step struct {
		name  string // as -only takes it
		title string
		run   func() error
	}
	steps := []step{
		{"aes", "upload " + humanSize(b.big.size) + ", " + aesGCM, func() (err error) {
			rep.upAES, err = b.scenarioUpload(ctx, aesGCM, "aes")
			return err
		}},
		{"chacha", "upload " + humanSize(b.big.size) + ", " + chacha20, func() (err error) {
			rep.upChacha, err = b.scenarioUpload(ctx, chacha20, "chacha")
			return err
		}},
		{"ctr", "upload " + humanSize(b.big.size) + ", " + aesCTR + " + " + etmMAC, func() (err error) {
			rep.upCTR, err = b.scenarioUpload(ctx, aesCTR, "ctr")
			return err
		}},
		{"download", "download " + humanSize(b.big.size), func() (err error) {
			rep.download, err = b.scenarioDownload(ctx)
			return err
		}},
		{"small", fmt.Sprintf("%d files of %s in one session", b.opts.smallFiles, humanSize(b.small.size)), func() (err error) {
			rep.small, err = b.scenarioSmallFiles(ctx)
			return err
		}},
		{"smallpar", fmt.Sprintf("%d sessions at once, %d files of %s each", b.opts.smallSessions, b.opts.smallPerSession, humanSize(b.small.size)), func() (err error) {
			rep.smallAtOnce, err = b.scenarioSmallAtOnce(ctx)
			return err
		}},
		{"sessions", fmt.Sprintf("%d concurrent sessions of %s", b.opts.sessions, humanSize(b.medium.size)), func() (err error) {
			rep.concurrent, err = b.scenarioConcurrent(ctx)
			return err
		}},
	}
	ran := false
	for _, s := range steps {
		if !b.opts.selected(s.name) {
			continue
		}
		logf("scenario: %s", s.title)
		if err := s.run(); err != nil {
			return fmt.Errorf("%s: %w", s.title, err)
		}
		ran = true
	}
	// Without scenarios 1–4 the peak would be that of airlock idling.
	if rss, err := b.air.peakRSS(); err == nil && ran {
		rep.longRSS = float64(rss) / (1 << 20)
	}
	// After the RSS reading, which is about scenarios 1–4.
	if b.opts.selected("latency") {
		title := fmt.Sprintf("landed → delivered latency, %d files of %s (airlock only)", b.opts.latencyFiles, humanSize(latencySize))
		logf("scenario: %s", title)
		if rep.latency, err = b.scenarioLatency(ctx); err != nil {
			return fmt.Errorf("%s: %w", title, err)
		}
	}
	b.air.stop()
	b.sshd.stop()
	// The big source is not needed any more; free its space for S3.
	for _, p := range []string{b.big.path, filepath.Join(b.sshd.root, "download", "big.bin"), filepath.Join(b.egressDir, "big.bin")} {
		os.Remove(p)
	}

	switch {
	case b.opts.noS3:
		rep.s3 = &s3Result{skipped: "skipped (-no-s3)"}
	case !b.opts.selected("s3"):
		rep.s3 = &s3Result{skipped: "not selected (-only)"}
	default:
		need := b.opts.s3Small + 3*b.opts.s3Large + 1<<30
		if err := b.checkSpace(need, "the S3 scenario"); err != nil {
			rep.s3 = &s3Result{skipped: "skipped: " + err.Error()}
			logf("S3 scenario %s", rep.s3.skipped)
			break
		}
		logf("scenario: upload %s and %s into an S3 landing store (airlock only)", humanSize(b.opts.s3Small), humanSize(b.opts.s3Large))
		if rep.s3, err = b.scenarioS3(ctx); err != nil {
			return fmt.Errorf("S3 scenario: %w", err)
		}
	}
	if rep.cluster, err = b.clusterStep(ctx); err != nil {
		return fmt.Errorf("cluster scenario: %w", err)
	}
	if rep.push, err = b.pushStep(ctx); err != nil {
		return fmt.Errorf("push scenario: %w", err)
	}
	if rep.route, err = b.routeStep(ctx); err != nil {
		return fmt.Errorf("route scenario: %w", err)
	}
	if rep.memory, err = b.memoryStep(ctx); err != nil {
		return fmt.Errorf("memory scenario: %w", err)
	}
	if rep.release, err = b.releaseStep(ctx); err != nil {
		return fmt.Errorf("release scenario: %w", err)
	}
	if b.opts.micro {
		logf("Go micro-benchmarks (internal/sftpd)")
		rep.micro = b.microBenchmarks(ctx)
	}
	rep.elapsed = time.Since(began)
	rep.loadEnd = loadAverage()

	md := rep.markdown()
	fmt.Print(md)
	if b.opts.out != "" {
		if err := os.WriteFile(b.opts.out, []byte(rep.document(md)), 0o644); err != nil {
			return err
		}
		logf("wrote %s", b.opts.out)
	}
	return nil
}

func (b *bench) findTools() error {
	b.tools = &toolset{}
	var errs []error
	for _, t := range []struct {
		name string
		dst  *string
		need bool
	}{
		{"sftp", &b.tools.sftp, true},
		{"ssh-keygen", &b.tools.keygen, true},
		{"sshd", &b.tools.sshd, true},
		{"versitygw", &b.tools.versitygw, !b.opts.noS3 && (b.opts.selected("s3") || b.opts.selected("push") || b.opts.selected("route") || b.opts.selected("release"))},
		{"haproxy", &b.tools.haproxy, false}, // without it the cluster scenario says it was skipped
		{"nginx", &b.tools.nginx, false},     // and the route scenario
		{"rclone", &b.tools.rclone, false},   // and the release scenario
	} {
		p, err := findTool(t.name)
		if err != nil && t.need {
			errs = append(errs, err)
		}
		*t.dst = p
	}
	return errors.Join(errs...)
}

// makeDir creates the temporary directory below a parent sshd accepts as
// part of a chroot path.
func (b *bench) makeDir() error {
	parent := b.opts.tmp
	if parent == "" {
		parent = os.TempDir()
		if chrootSafe(parent) != nil {
			cache, err := os.UserCacheDir()
			if err != nil {
				return err
			}
			parent = cache
		}
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	if err := chrootSafe(parent); err != nil {
		return fmt.Errorf("cannot host sshd's chroot below %s: %w; pass -tmp", parent, err)
	}
	dir, err := os.MkdirTemp(parent, "airlock-bench-")
	if err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	b.dir = dir
	logf("working in %s", dir)
	b.defer_(func() {
		if b.opts.keep {
			logf("kept %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return nil
}

// coreNeed is the disk space the OpenSSH/airlock scenarios use at most: the
// sources, one landed and one delivered (or downloaded) copy of the big
// file if it is written, and every concurrent upload and small file landed
// and delivered, plus a margin.
func (b *bench) coreNeed() int64 {
	o := b.opts
	need := o.sessionSize*int64(2*o.sessions+1) + o.smallSize*int64(2*o.smallFiles+2*o.smallSessions*o.smallPerSession+1) +
		latencySize*int64(2*o.latencyFiles+1) + 1<<30
	if o.bigFile() {
		need += 3 * o.size
	}
	return need
}

// latencySize is the size of each file of the latency scenario, as issue 5
// asks.
const latencySize = 1 << 20

func (b *bench) checkSpace(need int64, what string) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(b.dir, &st); err != nil {
		return err
	}
	free := int64(st.Bavail) * st.Bsize
	if free < need {
		return fmt.Errorf("%s needs %.1f GB free in %s, %.1f GB available", what, float64(need)/1e9, b.dir, float64(free)/1e9)
	}
	return nil
}

// startServers starts sshd and airlock (local landing) side by side, and
// puts the download file in both servers' download areas.
func (b *bench) startServers() error {
	var err error
	user := "root"
	if b.sshd, err = startSSHD(context.Background(), b.tools, filepath.Join(b.dir, "sshd"), b.client, user); err != nil {
		return err
	}
	b.defer_(b.sshd.stop)

	b.egressDir = filepath.Join(b.dir, "egress")
	if err := os.MkdirAll(b.egressDir, 0o755); err != nil {
		return err
	}
	// One file, hard-linked into both download areas: the same inode, the
	// same page cache. Without it (-only) the download areas stay empty,
	// and no scenario reads them.
	if b.opts.bigFile() {
		for _, p := range []string{filepath.Join(b.sshd.root, "download", "big.bin"), filepath.Join(b.egressDir, "big.bin")} {
			if err := os.Link(b.big.path, p); err != nil {
				return err
			}
		}
	}
	if b.airTree, err = writeAirlockTree(filepath.Join(b.dir, "airlock-local"), treeSpec{}, b.egressDir, b.client, b.dlClient); err != nil {
		return err
	}
	if b.air, err = startAirlock(b.tools, b.airTree); err != nil {
		return err
	}
	b.defer_(b.air.stop)

	b.openssh = &side{
		name: "OpenSSH", addr: b.sshd.addr,
		up: login{user, b.client.path}, uploadDir: "/upload",
		dl: login{user, b.client.path}, dlPath: "/download/big.bin",
		// sshd forks per connection; the children's CPU time counts once
		// the master has reaped them.
		idle: func(context.Context) error {
			waitNoChildren(b.sshd.cmd.Process.Pid)
			return nil
		},
		verify: func(_ context.Context, names []string, src srcFile) ([]string, error) {
			var bad []string
			for _, n := range names {
				if why := checkFile(filepath.Join(b.sshd.upload, n), src); why != "" {
					bad = append(bad, why)
				}
			}
			return bad, nil
		},
		clean: func() error { return removeFiles(b.sshd.upload) },
		cpu: func() float64 {
			c, _ := cpuSeconds(b.sshd.cmd.Process.Pid)
			return c
		},
	}
	b.airlock = b.airlockSide(b.airTree, b.air)
	// One login each before measuring: keys, binaries and the ledger warm.
	for _, s := range []*side{b.openssh, b.airlock} {
		if _, err := b.sftp(context.Background(), s, s.up, aesGCM, "pwd\n"); err != nil {
			return fmt.Errorf("warm-up login: %w", err)
		}
	}
	return nil
}

// moduleVersion is the main module version Go recorded in a binary.
func moduleVersion(bin string) string {
	out, _ := exec.Command("go", "version", "-m", bin).Output()
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "mod" {
			return f[2]
		}
	}
	return "unknown"
}

func moduleRoot() string {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "."
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "."
	}
	return filepath.Dir(gomod)
}

// machine describes where the numbers come from.
func (b *bench) machine() machineInfo {
	m := machineInfo{cores: runtime.NumCPU(), goVersion: runtime.Version()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(data))
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(strings.TrimPrefix(strings.SplitN(string(data), "\n", 2)[0], "MemTotal:"), "%d", &kb); err == nil {
			m.memGiB = float64(kb) / (1 << 20)
		}
	}
	m.openssh = commandOutput("ssh", "-V")
	if v := commandOutput("dpkg-query", "-W", "-f", "${Version}", "openssh-server"); v != "unknown" && !strings.Contains(v, "no packages") {
		m.sshd = "openssh-server " + v
	} else {
		m.sshd = commandOutput(b.tools.sshd, "-V")
	}
	if b.tools.versitygw != "" {
		m.versitygw = "versitygw " + moduleVersion(b.tools.versitygw)
	}
	if b.tools.haproxy != "" && b.opts.selected("cluster") {
		m.haproxy = "haproxy " + commandOutput("dpkg-query", "-W", "-f", "${Version}", "haproxy")
		if bin, err := postgresBin(); err == nil {
			m.postgres = commandOutput(filepath.Join(bin, "postgres"), "--version")
		}
	}
	root := moduleRoot()
	m.airlock = commandOutput("git", "-C", root, "describe", "--always", "--dirty")
	m.uncommitted = uncommittedSources(root)
	m.loadStart = loadAverage()
	return m
}

// uncommittedSources lists the changed or new files of the working tree
// that go into the airlock binary (non-test Go files, go.mod, go.sum): the
// numbers then measure that work in progress, not the commit.
func uncommittedSources(root string) []string {
	out, err := exec.Command("git", "-C", root, "status", "--porcelain").Output()
	if err != nil {
		return nil
	}
	var files []string
	for _, line := range strings.Split(string(out), "\n") {
		if len(line) < 4 {
			continue
		}
		f := line[3:]
		if _, to, ok := strings.Cut(f, " -> "); ok {
			f = to
		}
		if strings.HasPrefix(f, "bench/") || strings.HasSuffix(f, "_test.go") {
			continue
		}
		if strings.HasSuffix(f, ".go") || f == "go.mod" || f == "go.sum" || strings.HasSuffix(f, "/") {
			files = append(files, f)
		}
	}
	return files
}

// loadAverage is the 1-minute load average, or "?".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

// microBenchmarks runs the Go benchmarks of internal/sftpd and returns
// their result lines.
func (b *bench) microBenchmarks(ctx context.Context) string {
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", ".", "-benchmem", "-count", "1", "./internal/sftpd/")
	cmd.Dir = moduleRoot()
	out, err := cmd.CombinedOutput()
	var keep []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "Benchmark") || strings.HasPrefix(line, "cpu:") {
			keep = append(keep, line)
		}
	}
	if err != nil {
		keep = append(keep, fmt.Sprintf("(go test -bench failed: %v)", err), lastLines(string(out), 10))
	}
	return strings.Join(keep, "\n")
}
