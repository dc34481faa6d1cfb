package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

type machineInfo struct {
	cpu       string
	cores     int
	memGiB    float64
	kernel    string
	goVersion string
	openssh   string // client, ssh -V
	sshd      string
	versitygw string
	haproxy   string // and postgres: only when the cluster scenario is selected
	postgres  string
	airlock   string // git describe of the tree that was built
	// uncommitted lists the working tree's changes built into airlock.
	uncommitted []string
	loadStart   string // 1-minute load average before the run
}

type report struct {
	opts     options
	machine  machineInfo
	elapsed  time.Duration
	upAES    *result
	upChacha *result
	upCTR    *result // aes128-ctr, airlock's compatible profile
	download *result
	small    *result
	// smallAtOnce is 3b: small files from several sessions at once.
	smallAtOnce *result
	// concurrent sessions
	concurrent *result
	latency    *latencyResult
	s3         *s3Result
	cluster    *clusterResult
	push       *pushResult
	route      *routeResult
	memory     *memoryResult
	release    *releaseResult
	longRSS    float64 // MiB, airlock serving scenarios 1-4
	loadEnd    string
	micro      string
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// percentile is the nearest-rank p-th percentile of v.
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(v))
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(i, 0)]
}

// cell is "median (min–max)", or the one value of a single run.
func cell(v []float64, prec int) string {
	switch len(v) {
	case 0:
		return "failed"
	case 1:
		return fmt.Sprintf("%.*f", prec, v[0])
	}
	return fmt.Sprintf("%.*f (%.*f–%.*f)", prec, median(v), prec, slices.Min(v), prec, slices.Max(v))
}

func withErrors(c string, errs int) string {
	if errs > 0 {
		return fmt.Sprintf("%s, %d failed", c, errs)
	}
	return c
}

func ratio(r *result) float64 {
	return median(r.samples["airlock"]) / median(r.samples["OpenSSH"])
}

func fmtRatio(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "—"
	}
	return fmt.Sprintf("%.2f", x)
}

// orDash is c, or "—" where a side was not measured at all.
func orDash(c string, none bool) string {
	if none {
		return "—"
	}
	return c
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

type row [6]string

// measured is a scenario with per-run samples and server CPU.
type measured struct {
	name  string // as -only takes it
	label string // without the unit
	unit  string
	r     *result
}

// measured lists the scenarios that ran and record a result, in table
// order; those -only left out have none.
func (rep *report) measured() []measured {
	o := rep.opts
	big := humanSize(o.size)
	m := []measured{
		{"aes", "1a. upload " + big + ", aes128-gcm", "MB/s", rep.upAES},
		{"chacha", "1b. upload " + big + ", chacha20-poly1305", "MB/s", rep.upChacha},
		{"ctr", "1c. upload " + big + ", aes128-ctr + hmac-sha2-256-etm", "MB/s", rep.upCTR},
		{"download", "2. download " + big + " from /download", "MB/s", rep.download},
		{"small", fmt.Sprintf("3a. %d × %s in one session", o.smallFiles, humanSize(o.smallSize)), "files/s", rep.small},
		{"smallpar", fmt.Sprintf("3b. %d sessions × %d × %s at once", o.smallSessions, o.smallPerSession, humanSize(o.smallSize)), "files/s", rep.smallAtOnce},
		{"sessions", fmt.Sprintf("4. %d sessions × %s", o.sessions, humanSize(o.sessionSize)), "MB/s", rep.concurrent},
	}
	m = slices.DeleteFunc(m, func(m measured) bool { return m.r == nil })
	if rep.latency != nil {
		m = append(m, measured{"latency", fmt.Sprintf("6. %d × %s in one session, through the pipeline", o.latencyFiles, humanSize(latencySize)),
			"files/s", rep.latency.result})
	}
	return m
}

func (rep *report) rows() []row {
	var rows []row
	vs := func(m measured, prec int, target string, min float64) {
		r, x := m.r, ratio(m.r)
		rows = append(rows, row{m.label + " (" + m.unit + ")",
			withErrors(cell(r.samples["OpenSSH"], prec), r.errors["OpenSSH"]),
			withErrors(cell(r.samples["airlock"], prec), r.errors["airlock"]),
			fmtRatio(x), target, yesNo(x >= min && r.errors["airlock"] == 0)})
	}
	// Scenario 6's rows come after 5's, from latencyRows.
	for _, m := range rep.measured() {
		switch m.name {
		case "aes", "chacha", "ctr", "download":
			vs(m, 0, "ratio ≥ 0.9", 0.9)
		case "small", "smallpar":
			vs(m, 1, "≥ OpenSSH (ratio ≥ 1.0)", 1.0)
		case "sessions":
			rows = append(rows, rep.concurrentRows(m.label)...)
		}
	}

	s3 := rep.s3
	if s3 == nil || s3.skipped != "" {
		why := "skipped"
		if s3 != nil {
			why = s3.skipped
		}
		rows = append(rows, row{"5. upload into an S3 landing store (versitygw)", "—", why, "—", "RSS ≤ 128 MiB, within 10% across sizes", "—"})
	} else {
		sm, lg := humanSize(s3.sizes[0]), humanSize(s3.sizes[1])
		rsmall, rlarge := median(s3.rss[s3.sizes[0]]), median(s3.rss[s3.sizes[1]])
		growth := rlarge / rsmall
		errNote := ""
		if s3.errors > 0 {
			errNote = fmt.Sprintf(" (%d uploads failed)", s3.errors)
		}
		rows = append(rows,
			row{"5a. S3 landing: upload " + sm + " (MB/s)", "—", cell(s3.mbps[s3.sizes[0]], 0) + errNote, "—", "—", "—"},
			row{"5b. S3 landing: upload " + lg + " (MB/s)", "—", cell(s3.mbps[s3.sizes[1]], 0), "—", "—", "—"},
			row{"5c. S3 landing: airlock peak RSS, " + sm + " (MiB)", "—", cell(s3.rss[s3.sizes[0]], 1), "—", "—", "—"},
			row{"5d. S3 landing: airlock peak RSS, " + lg + " (MiB)", "—", cell(s3.rss[s3.sizes[1]], 1), "—", "≤ 128 MiB", yesNo(rlarge <= 128 && s3.errors == 0)},
			row{"5e. peak RSS " + lg + " / " + sm, "—", fmtRatio(growth), "—", "≤ 1.10 (within 10%)", yesNo(math.Abs(growth-1) <= 0.10)})
	}
	rows = append(rows, rep.latencyRows()...)
	rows = append(rows, rep.clusterRows()...)
	rows = append(rows, rep.pushRows()...)
	rows = append(rows, rep.routeRows()...)
	rows = append(rows, rep.memoryRows()...)
	return append(rows, rep.releaseRows()...)
}

// clusterRows are scenario 7: each setup's aggregate, the ratio of the
// larger to one node, and the sessions that failed.
func (rep *report) clusterRows() []row {
	c, o := rep.cluster, rep.opts
	what := fmt.Sprintf("%d sessions × %s through HAProxy", o.sessions, humanSize(o.sessionSize))
	target := fmt.Sprintf("reported (on %d cores: overhead, not scaling)", rep.machine.cores)
	if c == nil || c.skipped != "" {
		why := "skipped"
		if c != nil {
			why = c.skipped
		}
		return []row{{fmt.Sprintf("7. %s, 1 node and %d nodes on one Postgres and one S3 landing", what, clusterNodes), "—", why, "—", target, "—"}}
	}
	one, many := setupName(1), setupName(clusterNodes)
	return []row{
		{"7a. " + what + " to " + one + " (Postgres, S3 landing), aggregate (MB/s)", "—", cell(c.samples[one], 0), "—", "—", "—"},
		{"7b. the same to " + many + ", aggregate (MB/s); ratio = " + many + " / " + one, "—", cell(c.samples[many], 0), fmtRatio(c.ratio()), target, "—"},
		{"7c. errors (all runs), " + one + " / " + many, "—", fmt.Sprintf("%d / %d", c.errors[one], c.errors[many]), "—", "0",
			yesNo(c.errors[one] == 0 && c.errors[many] == 0)},
	}
}

// clusterCPURows are scenario 7's lines of the CPU table: the nodes' and
// HAProxy's CPU together.
func (rep *report) clusterCPURows() []string {
	c := rep.cluster
	if c == nil || c.skipped != "" {
		return nil
	}
	var lines []string
	for i, n := range []int{1, clusterNodes} {
		name := setupName(n)
		lines = append(lines, fmt.Sprintf("| 7%c. %s and HAProxy | — | %s | %s | — |", 'a'+i, name,
			cell(c.sessionCPU[name], 2), cell(c.cpu[name], 2)))
	}
	return lines
}

// clusterNotes say what scenario 7's ratio measures on this machine, and
// what one node behind the balancer costs against scenario 4's airlock.
func (rep *report) clusterNotes() []string {
	c := rep.cluster
	if c == nil || c.skipped != "" {
		return nil
	}
	one, many := setupName(1), setupName(clusterNodes)
	cores := rep.machine.cores
	notes := []string{fmt.Sprintf("7. On this %d-core machine the %s share the same %d cores as the one node does, with the %d clients, "+
		"HAProxy, Postgres and versitygw: the ratio %s / %s (%s) measures the overhead of the load balancer spreading sessions over "+
		"more nodes and of the nodes sharing one database, not scaling, which needs nodes on machines of their own. "+
		"HAProxy's own CPU per run: %s s with %s, %s s with %s.",
		cores, many, cores, rep.opts.sessions, many, one, fmtRatio(c.ratio()),
		cell(c.haproxyCPU[one], 2), one, cell(c.haproxyCPU[many], 2), many)}
	if rep.concurrent != nil {
		x := median(c.samples[one]) / median(rep.concurrent.samples["airlock"])
		notes = append(notes, fmt.Sprintf("7a / 4 (the same sessions to one airlock with a SQLite ledger, a local landing and no balancer): %s, "+
			"the cost of HAProxy, Postgres and the S3 landing for one node.", fmtRatio(x)))
	}
	return append(notes, c.notes...)
}

// concurrentRows are scenario 4: the aggregate throughput, whose target is
// relative to 1a's single session, and the sessions that failed.
func (rep *report) concurrentRows(label string) []row {
	c := rep.concurrent
	target, met := "≥ 0.8 × single-session airlock (1a not run)", "—"
	if rep.upAES != nil {
		single := median(rep.upAES.samples["airlock"])
		target = fmt.Sprintf("≥ 0.8 × single-session airlock (1a: ≥ %.0f)", 0.8*single)
		met = yesNo(median(c.samples["airlock"]) >= 0.8*single)
	}
	return []row{
		{label + ", aggregate (MB/s)", cell(c.samples["OpenSSH"], 0), cell(c.samples["airlock"], 0), fmtRatio(ratio(c)), target, met},
		{label + ", errors (all runs)", fmt.Sprint(c.errors["OpenSSH"]), fmt.Sprint(c.errors["airlock"]), "—", "0", yesNo(c.errors["airlock"] == 0)},
	}
}

// latencyTarget is DESIGN.md's target for small files, in milliseconds.
const latencyTarget = 250

// latencyRows are scenario 6: the latency over every file of every run,
// and the pipeline's files/s per run.
func (rep *report) latencyRows() []row {
	l := rep.latency
	if l == nil { // left out by -only
		return nil
	}
	files := fmt.Sprintf("%d × %s (one session), builtin scanner", rep.opts.latencyFiles, humanSize(latencySize))
	target := fmt.Sprintf("p50 ≤ %d ms", latencyTarget)
	if len(l.ms) == 0 {
		return []row{{"6a. landed → delivered, " + files + " (ms)", "—", withErrors("failed", l.errors["airlock"]), "—", target, "**no**"}}
	}
	p50 := percentile(l.ms, 50)
	return []row{
		{"6a. landed → delivered, " + files + ": p50 / p99 / max (ms)", "—",
			withErrors(fmt.Sprintf("%.0f / %.0f / %.0f", p50, percentile(l.ms, 99), slices.Max(l.ms)), l.errors["airlock"]),
			"—", target, yesNo(p50 <= latencyTarget && l.errors["airlock"] == 0)},
		{"6b. pipeline, first landed → last delivered (files/s)", "—", cell(l.samples["airlock"], 1), "—", "—", "—"},
	}
}

// markdown is what goes to stdout: machine, table, notes.
func (rep *report) markdown() string {
	var b strings.Builder
	m := rep.machine
	fmt.Fprintf(&b, "**Machine:** %s, %d cores, %.0f GiB RAM · Linux %s · %s · %s · sshd: %s",
		m.cpu, m.cores, m.memGiB, m.kernel, m.goVersion, m.openssh, m.sshd)
	for _, v := range []string{m.versitygw, m.haproxy, m.postgres} {
		if v != "" {
			fmt.Fprintf(&b, " · %s", v)
		}
	}
	fmt.Fprintf(&b, " · airlock %s\n\n", m.airlock)
	if len(m.uncommitted) > 0 {
		fmt.Fprintf(&b, "airlock was built from the working tree with uncommitted changes in %s: the numbers include them.\n\n",
			strings.Join(m.uncommitted, ", "))
	}
	fmt.Fprintf(&b, "%d run(s) per scenario and server, alternating; cells are median (min–max); ratio = airlock / OpenSSH of the medians. "+
		"Whole run: %s. Load average (1 min) %s before, %s after, on %d cores: anything above the bench's own load is other work sharing the machine.\n\n",
		rep.opts.runs, rep.elapsed.Round(time.Second), m.loadStart, rep.loadEnd, m.cores)
	b.WriteString("| scenario | OpenSSH | airlock | ratio | target | met? |\n|---|---|---|---|---|---|\n")
	for _, r := range rep.rows() {
		fmt.Fprintf(&b, "| %s |\n", strings.Join(r[:], " | "))
	}
	b.WriteString("\nServer CPU time per run (user + system seconds, median (min–max); sshd's includes its per-connection\n" +
		"processes). airlock's is given twice: up to the end of the sftp session, which compares with OpenSSH's,\n" +
		"and once its pipeline has delivered the run's files (the builtin scanner reads each file, the delivery\n" +
		"links it into the destination directory, which is on the same filesystem, hashes it once more and syncs it\n" +
		"to disk), work OpenSSH does not do. The pipeline may start before the session ends. CPU time moves less\n" +
		"than throughput when other work shares the machine; less is better.\n\n" +
		"| scenario | OpenSSH | airlock, session | airlock, with its pipeline | session / OpenSSH |\n|---|---|---|---|---|\n")
	for _, m := range rep.measured() {
		r := m.r
		x := median(r.sessionCPU["airlock"]) / median(r.cpu["OpenSSH"])
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", m.label, orDash(cell(r.cpu["OpenSSH"], 2), len(r.cpu["OpenSSH"]) == 0 && r.errors["OpenSSH"] == 0),
			cell(r.sessionCPU["airlock"], 2), cell(r.cpu["airlock"], 2), fmtRatio(x))
	}
	for _, line := range rep.clusterCPURows() {
		b.WriteString(line + "\n")
	}
	var notes []string
	if rep.longRSS > 0 {
		notes = append(notes, fmt.Sprintf("airlock's peak RSS over scenarios 1–4 (one process, local landing, with its pipeline): %.1f MiB.", rep.longRSS))
	}
	if l := rep.latency; l != nil && len(l.ms) > 0 {
		var parts []string
		for _, ph := range pipelinePhases {
			v := l.phases[ph.name]
			parts = append(parts, fmt.Sprintf("%s p50 %.0f ms, p99 %.0f ms", ph.name, percentile(v, 50), percentile(v, 99)))
		}
		notes = append(notes, "6. where a file's time goes, from the states its audit events record: "+strings.Join(parts, "; ")+".")
	}
	for _, m := range rep.measured() {
		notes = append(notes, m.r.notes...)
	}
	if rep.s3 != nil {
		notes = append(notes, rep.s3.notes...)
	}
	notes = append(notes, rep.clusterNotes()...)
	notes = append(notes, rep.pushNotes()...)
	if rep.route != nil {
		notes = append(notes, rep.route.notes...)
	}
	if rep.memory != nil {
		notes = append(notes, rep.memory.notes...)
	}
	if rep.release != nil {
		notes = append(notes, rep.release.notes...)
	}
	if len(notes) > 0 {
		b.WriteString("\nNotes:\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "- %s\n", strings.ReplaceAll(strings.TrimSpace(n), "\n", " ⏎ "))
		}
	}
	return b.String()
}

// document is docs/benchmarks.md: the report plus the method.
func (rep *report) document(md string) string {
	var b strings.Builder
	b.WriteString(`# Benchmarks

airlock against OpenSSH's own SFTP server on the same machine, in one run of ` + "`make bench`" + `
(` + "`bench/cmd/bench`" + `). The targets are those of issue 5 and DESIGN.md.
Generated on ` + time.Now().UTC().Format("2006-01-02 15:04 MST") + `; regenerate with ` + "`make bench`" + ` (about as long as
the run below) or check the harness with ` + "`go run ./bench/cmd/bench -quick`" + `. Where the time goes,
and what was tried: [performance.md](performance.md).

## Results

`)
	b.WriteString(md)
	b.WriteString(`
## Method

- **Servers**, both on 127.0.0.1, started by the harness in one temporary directory on the same
  filesystem: OpenSSH ` + "`sshd -D -e`" + ` with ` + "`Subsystem sftp internal-sftp`" + `, ` + "`ForceCommand internal-sftp`" + `,
  ` + "`ChrootDirectory`" + ` (root-owned) holding ` + "`/upload`" + ` and ` + "`/download`" + `, public-key auth, ` + "`UsePAM no`" + `,
  ` + "`UseDNS no`" + `, ` + "`Ciphers aes128-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr`" + `; the client logs in to it as
  root, because sshd only chroots when it runs as root. airlock is built from the working tree with
  ` + "`go build`" + ` and run as ` + "`airlock serve`" + ` with a SQLite ledger, a local landing directory, the builtin
  scanner (no clamd) and no SMTP or webhook; uploads go to an upload-only supplier whose destination is a
  local directory on the same filesystem, downloads come from an egress supplier's ` + "`/download`" + ` (a
  directory holding the same file, hard-linked, as sshd's ` + "`/download`" + `).
- **Client**: the OpenSSH ` + "`sftp`" + ` client in batch mode (` + "`-b`" + `) with its defaults (64 requests in flight, each
  as large as the server announces with limits@openssh.com: 255 KiB from both servers), compression off,
  ` + "`-c aes128-gcm@openssh.com`" + ` in every scenario but 1b and 1c (` + "`-c aes128-ctr`" + `, airlock's compatible profile), and
  ` + "`-o MACs=hmac-sha2-256-etm@openssh.com`" + ` (used only by 1c: the AEAD ciphers carry their own MAC). A figure is the wall time of one ` + "`sftp`" + ` process
  from start to exit, so it includes starting ` + "`ssh`" + `, key exchange and login: about 120 ms with sshd, which
  starts processes for each connection, and 10 ms with airlock; it counts only in scenario 3. Key exchange differs:
  this client agrees sntrup761x25519 with sshd and curve25519 with airlock (it predates ML-KEM).
- **Units**: MB = 10^6 bytes, MiB = 2^20. Files are pseudo-random (incompressible).
- **Order**: every run measures both servers back to back, OpenSSH first in odd runs and airlock first
  in even ones. Cells are median (min–max) over the runs; ratio = airlock median / OpenSSH median.
- **Pipeline**: every airlock upload, once received, is scanned and delivered by airlock's background jobs
  (River, polling its SQLite queue). After each airlock session the harness waits, untimed, until no job is
  left: River's job table, opened read-only, holds no unfinished job, so every file is delivered and its
  notification done (bounded by ` + "`-pipeline-timeout`" + `). Only then is the server's CPU time read and the next
  run started, so no pipeline work of an airlock run overlaps an OpenSSH run. In scenarios 3, 4 and 6 the
  pipeline delivers the first files while the session is still uploading the others, on the same cores:
  that is part of airlock's figure, as it would be for a supplier.
- **Between runs** the uploaded files are deleted (OpenSSH's chroot; airlock's destination and anything left
  in landing) and ` + "`sync(2)`" + ` flushes dirty pages, so one run's write-back does not slow the next; the page
  cache is not dropped (sources are read from cache by both).
- **Checks**: every upload is verified: OpenSSH, the file in the chroot by size and sha256; airlock, the
  ledger row is ` + "`delivered`" + ` with the right size and sha256 and the file in the destination has the right
  size and sha256. Every download is checked by sha256. A failed check is an error and its run does not
  count towards throughput.
- **Concurrent sessions**: all ` + "`sftp`" + ` processes start at once; aggregate = all bytes / wall time from
  the first start to the last exit; errors = sessions that failed or whose file did not arrive whole.
  All sessions come from 127.0.0.1, so airlock's ` + "`max_connections_per_ip`" + ` is raised to 64 (default 20)
  and sshd's ` + "`MaxStartups`" + ` to 200 (the default 10:30:100 drops unauthenticated connections at random).
- **S3 landing** (airlock only): versitygw (posix backend) on 127.0.0.1 as the landing store, the
  destination still a local directory; airlock is started fresh for every upload and its peak RSS is
  ` + "`VmHWM`" + ` from ` + "`/proc/<pid>/status`" + `, read once the file has been delivered (so it covers the scan and the
  copy reading the object back from S3) and before stopping it. The time is the upload's alone and
  includes versitygw assembling the multipart upload, which copies the parts on the same disk; hence the
  scenario needs about 3 × the large size plus the small one free (17 GB at 5 GB), and is skipped with a
  message when the disk has less.
- **Landed → delivered** (scenario 6, airlock only): ` + "`-latency-files`" + ` files of 1 MiB are put one after the
  other in one session; each file's latency runs from the audit event that records it ` + "`received`" + ` (the
  upload's close, kind ` + "`upload.finish`" + `) to the one that records it ` + "`delivered`" + ` (copied and verified), read
  with ` + "`airlock transfers show ID --json`" + ` (microsecond timestamps). p50 / p99 / max are over every file of
  every run (nearest rank); the pipeline's files/s is the files of a run over the time from its first
  ` + "`received`" + ` to its last ` + "`delivered`" + `. The notes split the latency at the ` + "`scanning`" + ` and ` + "`delivering`" + ` events.
- **Cluster** (scenario 7, airlock only): the sessions of scenario 4 go through HAProxy (Debian's,
  ` + "`mode tcp`" + `, ` + "`balance roundrobin`" + `, ` + "`send-proxy-v2`" + ` to each node) to one node and then to three, alternating
  which setup goes first. Every node is ` + "`airlock serve`" + ` with its own ` + "`node:`" + ` name, SFTP and HTTP ports
  and state directory, ` + "`sftp.proxy_protocol.trusted: [\"127.0.0.1/32\"]`" + `, and the same host key, database,
  landing, quarantine and destination directory: a throwaway Postgres the harness starts (` + "`initdb`" + ` in a
  temporary directory, a Unix socket only, run as the postgres user, default settings but ` + "`max_connections`" + `
  300), and versitygw holding the landing and quarantine buckets (a local landing directory cannot be shared).
  For each run the setup's nodes and HAProxy are started, one login per node warms them, and all are stopped
  once the pipeline (River's jobs, now in Postgres) is idle; the ledger and the buckets carry over between runs.
  Aggregate, errors and checks as in scenario 4; server CPU is the nodes' and HAProxy's together. This machine's
  cores are shared by every node, so the ratio of three nodes to one measures overhead, not scaling.
- **Push dataset** (scenario 8, airlock only): a dataset whose bucket is on versitygw (posix backend) on
  127.0.0.1 and a local export area, polled every 250 ms; an object pushed from there is streamed (read,
  hashed and sent in 8 MiB parts, one filling while one is sent), never server-side copied. For each push
  airlock is started fresh, the source (the sizes of scenario 5) is hard-linked into the dataset's prefix,
  so that it appears whole at once, and once the ledger records it delivered airlock's ` + "`VmHWM`" + ` is read and
  the object in the target checked by sha256. MB/s is the size over the time from the transfer's first audit
  event to the one recording it ` + "`delivered`" + `: hashing the source, the send, versitygw assembling the parts
  (a copy on the same disk) and the check; the notes give the send (` + "`delivering`" + ` → ` + "`delivered`" + `) alone.
  It needs about 3 × the large size plus the small one free, and is skipped with a message when the disk has less.
- **Routes** (scenario 9, airlock only): two routes from versitygw to nginx (` + "`ssl_verify_client on`" + `, ` + "`dav_methods PUT`" + `)
  over mutual TLS, the source polled every 250 ms. One takes objects of the sizes of scenario 5, pseudo-random
  bytes envelope-encrypted as the egress pipelines write them (AES-256-CTR, the data key wrapped by a
  ` + "`base64key://`" + ` key service, in the object's metadata), and sends them decrypted and zstd-compressed, each
  in one chunked PUT; airlock is started fresh for each, its ` + "`VmHWM`" + ` read once the ledger records the object
  delivered, and nginx's file decompressed and checked against the plaintext's sha256. MB/s is the size over
  the time from the transfer's first audit event to ` + "`delivered`" + `: hashing the source, then reading it again
  to decrypt, compress and send. The other route sends a flag batch: 1,000 files of 64 KiB written under its
  prefix while airlock runs, then ` + "`pipeline_success.flag`" + `; files/s is 1,000 over the time from writing the
  flag to the batch's manifest sent (its ` + "`settled_at`" + `). Two runs of each (random data does not compress:
  zstd's work is all there is to measure), alternating the sizes' order.
- **Server CPU** is user + system time from ` + "`/proc/<pid>/stat`" + ` over each run: airlock's process, including
  its pipeline (read after the wait above), and sshd's master with the per-connection processes it has
  reaped (the harness waits for them).
- **Caveats**: the machine's cores are shared by the client (` + "`sftp`" + ` + ` + "`ssh`" + `), the server, and in
  scenarios 5, 7, 8 and 9 versitygw (and in 9 nginx) (and in 7 HAProxy and Postgres); other work (builds, tests of other sessions) may have run at the same time,
  so read single figures with their min–max spread in mind.
`)
	if rep.micro != "" {
		b.WriteString("\n## Go micro-benchmarks\n\n`go test -run '^$' -bench . -benchmem ./internal/sftpd/` — the reorder window alone, and uploads and\n" +
			"downloads of 64 MiB through an in-process server with pkg/sftp's client (64 × 32 KiB in flight);\n" +
			"B/op there includes the client's allocations:\n\n```\n")
		b.WriteString(rep.micro)
		b.WriteString("\n```\n")
	}
	return b.String()
}
