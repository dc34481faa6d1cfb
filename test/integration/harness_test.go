// Package integration runs the airlock binary against real peers: the
// OpenSSH sftp client, rclone and the versitygw S3 server. With CI=true a
// missing peer fails the test instead of skipping it.
package integration

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/testpeer"
)

var airlockBin string

// parallel is how many tests run at once unless -parallel says otherwise:
// they mostly wait on other processes (airlock, clients, peers, outages),
// so more than the default of one per CPU keeps the suite short.
const parallel = 4

func TestMain(m *testing.M) {
	flag.Parse()
	if !flagSet("test.parallel") {
		_ = flag.Set("test.parallel", fmt.Sprint(max(parallel, runtime.GOMAXPROCS(0))))
	}
	dir, err := os.MkdirTemp("", "airlock-itest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	airlockBin = filepath.Join(dir, "airlock")
	build := exec.Command("go", "build", "-o", airlockBin, "../../cmd/airlock")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build airlock:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// clientKey is an ed25519 key pair made by the real ssh-keygen.
type clientKey struct {
	path       string // private key
	authorized string // public key line
	expires    string // optional expiry written to ssh_keys in the mapping form ("2027-03-31")
}

func newClientKey(t *testing.T) clientKey {
	t.Helper()
	keygen := testpeer.Require(t, "ssh-keygen")
	p := filepath.Join(t.TempDir(), "id_ed25519")
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", "itest", "-f", p).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(p + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return clientKey{path: p, authorized: strings.TrimSpace(string(pub))}
}

type supplierSpec struct {
	name       string
	allowedIPs []string
	keys       []clientKey
	egress     string // egress store location, "" for upload-only
	// dest is the supplier's destination; the zero value is a directory
	// in the gateway's tree.
	dest destination
	// held makes every delivery fail and be retried (the destination is
	// a path below a regular file), so that the supplier's files wait in
	// delivering with their bytes in landing: for the tests of what a
	// supplier may do with a file that is still on its way.
	held bool
}

// destination is where a supplier's clean files go, and where they appear
// on this machine's disk for the tests to check: a local directory, or the
// bucket directory of a versitygw posix backend.
type destination struct {
	url    string // destination.url
	dir    string // its objects as files
	kmsKey string // destination.kms_key
}

type gatewayOpts struct {
	sftpExtra   string // more keys of the sftp section, as YAML lines indented by two spaces
	extra       string // more top-level sections of airlock.yaml
	landing     string // default: a directory in the tree
	database    string // a DSN; default: a SQLite file in the tree
	landingDir  string // where landed objects appear on disk, when landing is not a directory
	quarantine  string // default: a directory in the tree
	maxFileSize string
	env         []string
	suppliers   []supplierSpec

	clamd    string // scanner.clamd; "" is the builtin scanner
	pipeline string // keys of the pipeline section, as YAML lines indented by two spaces
	mail     *mailbox
	webhook  *webhookReceiver
	// stallScans points scanner.clamd at a socket that takes scans and
	// never answers, with one worker: uploads stay received (handed to the
	// pipeline and waiting), as they did before there was a pipeline. For
	// tests of the SFTP side that must not pay for thousands of deliveries.
	stallScans bool

	// drain is sftp.drain_timeout, by default 2s rather than 20s: the
	// sessions a test leaves open must not hold up its end.
	drain time.Duration
}

// The notification addresses of the test gateways.
const (
	operatorEmail    = "ops@example.org"
	webhookSecretEnv = "AIRLOCK_TEST_WEBHOOK_SECRET"
)

func supplierEmail(name string) string { return name + "@example.org" }

// gateway is an airlock process with its own configuration tree.
type gateway struct {
	t        *testing.T
	dir      string
	cfg      string
	sftpAddr string
	httpAddr string
	landing  string
	database string // the DSN of the ledger: SQLite in the tree, or a database shared with other nodes
	env      []string

	landingDir string                  // landed objects on disk
	specs      map[string]supplierSpec // by name
	stalled    bool                    // scans never finish: see gatewayOpts.stallScans
	// stuck are the transfers a check has already failed for not coming
	// to rest; later checks take them for pending, so that one stuck file
	// fails one check, not every one after it.
	stuck sync.Map // transfer id → true

	proc *testpeer.Process // nil while airlock is not running
	log  *syncBuffer
}

func newGateway(t *testing.T, o gatewayOpts) *gateway {
	t.Helper()
	dir := t.TempDir()
	g := &gateway{t: t, dir: dir, cfg: filepath.Join(dir, "airlock.yaml"),
		sftpAddr: testpeer.FreeAddr(t), httpAddr: testpeer.FreeAddr(t), landing: o.landing, env: o.env,
		landingDir: o.landingDir, specs: make(map[string]supplierSpec), stalled: o.stallScans, database: o.database}
	if g.landing == "" {
		g.landing = filepath.Join(dir, "state", "landing")
	}
	if g.landingDir == "" {
		g.landingDir = g.landing
	}
	g.database = cmp.Or(o.database, "sqlite:"+filepath.Join(dir, "state", "airlock.db"))
	database, quarantine := cmp.Or(o.database, "sqlite:state/airlock.db"), cmp.Or(o.quarantine, "state/quarantine")
	// Registered first so that it runs last: the peers below (a stalled
	// scanner) must let go of airlock before it is asked to stop.
	t.Cleanup(g.stop)
	maxSize := o.maxFileSize
	if maxSize == "" {
		maxSize = "5GB"
	}
	extra := o.extra
	pipeline := o.pipeline
	clamd := o.clamd
	if o.stallScans {
		clamd = stalledScanner(t)
		pipeline = "  workers: 1\n  retry_backoff: 1h\n  max_backoff: 1h\n"
	}
	if clamd != "" {
		extra += fmt.Sprintf("scanner:\n  clamd: %q\n", clamd)
	}
	if pipeline != "" {
		extra += "pipeline:\n" + pipeline
	}
	if o.mail != nil || o.webhook != nil {
		extra += fmt.Sprintf("notify:\n  operators: [%q]\n", operatorEmail)
	}
	if o.mail != nil {
		extra += fmt.Sprintf("  smtp:\n    addr: %q\n    from: \"airlock@example.org\"\n    tls: none\n", o.mail.addr)
	}
	if o.webhook != nil {
		extra += fmt.Sprintf("  webhook:\n    url: %q\n    secret_env: %q\n", o.webhook.url(), webhookSecretEnv)
		g.env = append(g.env, webhookSecretEnv+"="+o.webhook.secret)
	}
	writeFile(t, g.cfg, fmt.Sprintf(`sftp:
  listen: %q
  drain_timeout: %q
%shttp:
  listen: %q
database: %q
landing: %q
quarantine: %q
limits:
  max_file_size: %q
suppliers_dir: "suppliers"
%s`, g.sftpAddr, cmp.Or(o.drain, 2*time.Second).String(), o.sftpExtra, g.httpAddr, database, g.landing, quarantine, maxSize, extra))
	for _, s := range o.suppliers {
		var keys []string
		for _, k := range s.keys {
			if k.expires != "" {
				keys = append(keys, fmt.Sprintf("{key: %q, expires: %q}", k.authorized, k.expires))
				continue
			}
			keys = append(keys, fmt.Sprintf("%q", k.authorized))
		}
		ips := s.allowedIPs
		if ips == nil {
			ips = []string{"127.0.0.1/32"}
		}
		switch {
		case s.held:
			// A regular file where the destination's parent directory
			// should be: no retry can create the destination.
			writeFile(t, filepath.Join(dir, "held"), "not a directory\n")
			s.dest = destination{url: filepath.Join(dir, "held", s.name)}
		case s.dest.url == "":
			s.dest = destination{url: filepath.Join(dir, "delivered", s.name), dir: filepath.Join(dir, "delivered", s.name)}
		}
		body := fmt.Sprintf("name: %s\nemail: %s\nallowed_ips: [%s]\nssh_keys: [%s]\ndestination:\n  url: %q\n",
			s.name, supplierEmail(s.name), quoteAll(ips), strings.Join(keys, ", "), s.dest.url)
		if s.dest.kmsKey != "" {
			body += fmt.Sprintf("  kms_key: %q\n", s.dest.kmsKey)
		}
		if s.egress != "" {
			body += fmt.Sprintf("egress:\n  url: %q\n", s.egress)
		}
		writeFile(t, filepath.Join(dir, "suppliers", s.name+".yaml"), body)
		g.specs[s.name] = s
	}
	return g
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// start runs airlock serve and waits for both listeners.
func (g *gateway) start() {
	g.t.Helper()
	// One log across restarts, so that a failure shows every life.
	if g.log == nil {
		g.log = &syncBuffer{}
	} else {
		fmt.Fprintf(g.log, "---- airlock restarted at %s ----\n", time.Now().UTC().Format(time.RFC3339Nano))
	}
	for tries := 1; ; tries++ {
		cmd := exec.Command(airlockBin, "serve", "--config", g.cfg)
		cmd.Env = append(os.Environ(), g.env...)
		cmd.Stdout, cmd.Stderr = g.log, g.log
		g.proc = testpeer.Start(g.t, cmd)
		err := testpeer.Listening(g.sftpAddr, g.proc.Exited())
		if err == nil {
			err = testpeer.Listening(g.httpAddr, g.proc.Exited())
		}
		if err == nil {
			return
		}
		// A port found free may be taken, by a client's connection even,
		// before airlock binds it: then it starts again on fresh ones.
		if !errors.Is(err, testpeer.ErrExited) || !strings.Contains(g.log.String(), "address already in use") || tries == 3 {
			g.t.Fatalf("start airlock: %v", err)
		}
		g.moveAddrs()
	}
}

// moveAddrs gives airlock fresh listening addresses.
func (g *gateway) moveAddrs() {
	g.t.Helper()
	b, err := os.ReadFile(g.cfg)
	if err != nil {
		g.t.Fatal(err)
	}
	sftpAddr, httpAddr := testpeer.FreeAddr(g.t), testpeer.FreeAddr(g.t)
	cfg := strings.NewReplacer(g.sftpAddr, sftpAddr, g.httpAddr, httpAddr).Replace(string(b))
	g.sftpAddr, g.httpAddr = sftpAddr, httpAddr
	if err := os.WriteFile(g.cfg, []byte(cfg), 0o644); err != nil {
		g.t.Fatal(err)
	}
	fmt.Fprintf(g.log, "---- the ports were taken; starting on %s and %s ----\n", sftpAddr, httpAddr)
}

// stop ends airlock gracefully; the log is shown if the test failed.
func (g *gateway) stop() {
	if g.proc == nil {
		return
	}
	g.proc.Stop(15 * time.Second)
	g.proc = nil
	if g.t.Failed() {
		g.t.Logf("airlock log:\n%s", g.log.String())
	}
}

// kill ends airlock with SIGKILL: no cleanup runs.
func (g *gateway) kill() {
	g.proc.Kill()
	g.proc = nil
}

func (g *gateway) port() string {
	_, p, _ := net.SplitHostPort(g.sftpAddr)
	return p
}

// airlock runs a CLI command against the gateway's configuration.
func (g *gateway) airlock(args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command(airlockBin, append(args, "--config", g.cfg)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// transfers is `airlock transfers list --json`.
func (g *gateway) transfers() []ledger.Transfer {
	g.t.Helper()
	out, errOut, err := g.airlock("transfers", "list", "--json")
	if err != nil {
		g.t.Fatalf("transfers list: %v\n%s", err, errOut)
	}
	var trs []ledger.Transfer
	if err := json.Unmarshal([]byte(out), &trs); err != nil {
		g.t.Fatalf("transfers list output: %v\n%s", err, out)
	}
	return trs
}

// openLedger opens the gateway's database directly, for reads faster
// than a CLI run; the caller closes it.
func (g *gateway) openLedger(t *testing.T) *ledger.Ledger {
	t.Helper()
	l, err := ledger.Open(context.Background(), g.database)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// events reads the audit trail.
func (g *gateway) events() []ledger.Event {
	g.t.Helper()
	l := g.openLedger(g.t)
	defer l.Close()
	evs, err := l.Events(context.Background(), "", 0)
	if err != nil {
		g.t.Fatal(err)
	}
	return evs
}

// lastSeq is the sequence number of the newest audit event.
func (g *gateway) lastSeq() int64 {
	evs := g.events()
	if len(evs) == 0 {
		return 0
	}
	return evs[len(evs)-1].Seq
}

// findEvent returns the first audit event after seq of kind whose detail
// values contain those in match.
func (g *gateway) findEvent(after int64, kind string, match map[string]string) (ledger.Event, bool) {
	for _, ev := range g.events() {
		if ev.Seq <= after || ev.Kind != kind {
			continue
		}
		ok := true
		for k, v := range match {
			if !strings.Contains(ev.Detail[k], v) {
				ok = false
			}
		}
		if ok {
			return ev, true
		}
	}
	return ledger.Event{}, false
}

// landedFiles lists the regular files under a local landing directory.
func landedFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// sftpBatch runs the OpenSSH sftp client in batch mode.
func (g *gateway) sftpBatch(user string, key clientKey, batch string, extra ...string) (string, error) {
	g.t.Helper()
	out, err := g.sftpCommand(user, key, batch, extra...).CombinedOutput()
	return string(out), err
}

// sftpCommand prepares (without starting) an sftp batch run.
func (g *gateway) sftpCommand(user string, key clientKey, batch string, extra ...string) *exec.Cmd {
	return sftpCommandTo(g.t, g.sftpAddr, user, key, batch, extra...)
}

// sftpCommandTo is sftpCommand for any address, such as a proxy's.
func sftpCommandTo(t *testing.T, addr, user string, key clientKey, batch string, extra ...string) *exec.Cmd {
	bin := testpeer.Require(t, "sftp")
	host, port, _ := net.SplitHostPort(addr)
	args := append([]string{"-b", "-", "-P", port, "-i", key.path,
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
		"-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR"}, extra...)
	cmd := exec.Command(bin, append(args, user+"@"+host)...)
	cmd.Stdin = strings.NewReader(batch)
	return cmd
}

// rclone runs rclone with an sftp remote "air:" pointing at the gateway.
func (g *gateway) rclone(user string, key clientKey, args ...string) (string, error) {
	g.t.Helper()
	bin := testpeer.Require(g.t, "rclone")
	host, port, _ := net.SplitHostPort(g.sftpAddr)
	cmd := exec.Command(bin, append([]string{"--config", filepath.Join(g.t.TempDir(), "rclone.conf")}, args...)...)
	cmd.Env = append(os.Environ(),
		"RCLONE_CONFIG_AIR_TYPE=sftp",
		"RCLONE_CONFIG_AIR_HOST="+host,
		"RCLONE_CONFIG_AIR_PORT="+port,
		"RCLONE_CONFIG_AIR_USER="+user,
		"RCLONE_CONFIG_AIR_KEY_FILE="+key.path,
	)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// metric reads one sample from /metrics ("name" or `name{label="v"}`).
func (g *gateway) metric(series string) float64 {
	g.t.Helper()
	resp, err := http.Get("http://" + g.httpAddr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if ok && name == series {
			var f float64
			fmt.Sscan(val, &f)
			return f
		}
	}
	return 0
}

// randomFile writes size pseudo-random bytes and returns the path and sha256.
func randomFile(t *testing.T, size int64) (string, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), fmt.Sprintf("src-%d.bin", size))
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	src := rand.NewChaCha8([32]byte{byte(size), byte(size >> 8), byte(size >> 16)})
	if _, err := io.CopyN(io.MultiWriter(f, h), src, size); err != nil {
		t.Fatal(err)
	}
	return p, hex.EncodeToString(h.Sum(nil))
}

func fileSHA256(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// transferAt returns the newest transfer of supplier at path.
func transferAt(trs []ledger.Transfer, supplier, path string) (ledger.Transfer, bool) {
	for _, tr := range trs {
		if tr.Supplier == supplier && tr.Path == path {
			return tr, true
		}
	}
	return ledger.Transfer{}, false
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// pendingStates are those of a file on its way through the pipeline: its
// bytes are in landing (or, released, in quarantine).
var pendingStates = []ledger.State{ledger.Received, ledger.Scanning, ledger.Delivering}

func isPending(tr ledger.Transfer) bool { return slices.Contains(pendingStates, tr.State) }

// rests reports whether tr is where this gateway leaves it: an outcome,
// or held on purpose (stalled scans; a held supplier's failing delivery,
// once it has failed at least once).
func (g *gateway) rests(tr ledger.Transfer) bool {
	if _, ok := g.stuck.Load(tr.ID); ok {
		return true
	}
	switch tr.State {
	case ledger.Delivered, ledger.Quarantined, ledger.Failed, ledger.Interrupted:
		return true
	case ledger.Received:
		return g.stalled
	case ledger.Scanning, ledger.Delivering:
		// A held supplier's file waits in scanning when its destination
		// cannot even be opened (the pipeline opens it before recording
		// the scan), else in delivering.
		return g.stalled && tr.State == ledger.Scanning || g.specs[tr.Supplier].held && tr.Error != ""
	}
	return false
}

// restingState is the state a clean upload of supplier comes to rest in.
func (g *gateway) restingState(supplier string) []ledger.State {
	switch {
	case g.stalled:
		return []ledger.State{ledger.Received, ledger.Scanning}
	case g.specs[supplier].held:
		return []ledger.State{ledger.Scanning, ledger.Delivering}
	}
	return []ledger.State{ledger.Delivered}
}

// pollEvery is how often the waits below read the ledger: each read runs
// `airlock transfers list`, which costs a process.
const pollEvery = 100 * time.Millisecond

// waitRows polls the ledger until cond holds for its rows (newest first)
// and returns them. After within it fails the test with what it waited
// for, the rows and the end of airlock's log.
func (g *gateway) waitRows(t *testing.T, within time.Duration, what string, cond func([]ledger.Transfer) bool) []ledger.Transfer {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		trs := g.transfers()
		if cond(trs) {
			return trs
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s\n%s", within, what, g.diagnosis(trs))
		}
		time.Sleep(pollEvery)
	}
}

// waitTransfer waits until the newest transfer of supplier at p meets
// cond, and returns it.
func (g *gateway) waitTransfer(t *testing.T, supplier, p string, within time.Duration, what string, cond func(ledger.Transfer) bool) ledger.Transfer {
	t.Helper()
	var tr ledger.Transfer
	g.waitRows(t, within, fmt.Sprintf("%s (%s %s)", what, supplier, p), func(trs []ledger.Transfer) bool {
		var ok bool
		tr, ok = transferAt(trs, supplier, p)
		return ok && cond(tr)
	})
	return tr
}

// diagnosis is what a failed wait shows: the rows (at most 50) and the
// end of airlock's log.
func (g *gateway) diagnosis(trs []ledger.Transfer) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d transfers, newest first:\n", len(trs))
	for i, tr := range trs {
		if i == 50 {
			fmt.Fprintf(&b, "  … %d more\n", len(trs)-i)
			break
		}
		fmt.Fprintf(&b, "  %s %-11s %s %s size=%d sha=%.12s attempts=%d error=%q\n",
			tr.ID, tr.State, tr.Supplier, tr.Path, tr.Size, tr.SHA256, tr.Attempts, tr.Error)
	}
	fmt.Fprintf(&b, "airlock log, last lines:\n%s", g.logTail(40))
	return b.String()
}

// logTail returns the last n lines airlock logged.
func (g *gateway) logTail(n int) string {
	if g.log == nil {
		return "(airlock never started)\n"
	}
	lines := strings.SplitAfter(g.log.String(), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "")
}

// assertArrived waits (bounded) until the upload of supplier at p rests,
// then checks its row and its bytes where they now are: delivered to the
// supplier's destination and gone from landing; or, for a held supplier
// or stalled scans, still in landing. A file whose pipeline keeps failing
// (an error recorded for failingFor) fails the test without the full wait.
func assertArrived(t *testing.T, g *gateway, supplier, p, sha string, size int64) ledger.Transfer {
	t.Helper()
	start := time.Now()
	tr := g.waitTransfer(t, supplier, p, 20*time.Second, "the upload to come to rest", func(tr ledger.Transfer) bool {
		return g.rests(tr) || tr.Error != "" && time.Since(start) > failingFor
	})
	want := g.restingState(supplier)
	if !slices.Contains(want, tr.State) || tr.SHA256 != sha || tr.Size != size {
		g.stuck.Store(tr.ID, true)
		t.Fatalf("transfer %s: state %s sha %s size %d; want %v %s %d\n%s",
			p, tr.State, tr.SHA256, tr.Size, want, sha, size, g.diagnosis([]ledger.Transfer{tr}))
	}
	landed := g.landedPath(tr)
	if tr.State != ledger.Delivered {
		if got := fileSHA256(t, landed); got != sha {
			t.Fatalf("landed bytes of %s have sha256 %s, want %s", p, got, sha)
		}
		return tr
	}
	if got := fileSHA256(t, g.destFile(supplier, p)); got != sha {
		t.Fatalf("delivered bytes of %s have sha256 %s, want %s", p, got, sha)
	}
	if _, err := os.Stat(landed); !os.IsNotExist(err) {
		t.Fatalf("%s was delivered but is still in landing at %s (%v)", p, landed, err)
	}
	return tr
}

// failingFor is how long a transfer that should go through smoothly may
// show a step's error (a retry) before the waits give up on it.
const failingFor = 5 * time.Second

// decodeReceipt reads a <name>.receipt.json.
func decodeReceipt(t *testing.T, r io.Reader) receipt {
	t.Helper()
	var rc receipt
	if err := json.NewDecoder(r).Decode(&rc); err != nil {
		t.Fatalf("decode receipt: %v", err)
	}
	return rc
}

// receipt is <name>.receipt.json as a supplier reads it.
type receipt struct {
	TransferID string    `json:"transfer_id"`
	Path       string    `json:"path"`
	Size       int64     `json:"size"`
	SHA256     string    `json:"sha256"`
	Outcome    string    `json:"outcome"`
	ScanResult string    `json:"scan_result"`
	ReceivedAt time.Time `json:"received_at"`
	SettledAt  time.Time `json:"settled_at"`
	Note       string    `json:"note"`
}

// receipt fetches the receipt of p with the OpenSSH client.
func (g *gateway) receipt(t *testing.T, user string, key clientKey, p string) receipt {
	t.Helper()
	local := filepath.Join(t.TempDir(), "receipt.json")
	if out, err := g.sftpBatch(user, key, fmt.Sprintf("get %s.receipt.json %s\n", p, local)); err != nil {
		t.Fatalf("get the receipt of %s: %v\n%s", p, err, out)
	}
	f, err := os.Open(local)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return decodeReceipt(t, f)
}

// landedPath is where the landing store keeps tr's bytes on disk.
func (g *gateway) landedPath(tr ledger.Transfer) string {
	return filepath.Join(g.landingDir, filepath.FromSlash(tr.LandingKey))
}

// destFile is where supplier's file uploaded at p is delivered, on disk.
func (g *gateway) destFile(supplier, p string) string {
	return filepath.Join(g.specs[supplier].dest.dir, filepath.FromSlash(strings.TrimPrefix(p, "/")))
}

// stalledScanner listens on a unix socket like clamd, takes whatever is
// sent and never answers. Its connections are closed when the test ends,
// before airlock is stopped, so that the scans waiting on them fail at
// once instead of holding up airlock's shutdown.
func stalledScanner(t *testing.T) string {
	t.Helper()
	addr, ln := clamdSocket(t)
	serveConns(t, ln, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	return addr
}

// clamdSocket listens on a fresh unix socket, removed when the test ends,
// and returns its scanner.clamd address.
func clamdSocket(t *testing.T) (string, net.Listener) {
	t.Helper()
	// Not t.TempDir: a unix socket path must stay under 108 bytes.
	dir, err := os.MkdirTemp("", "clamd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) }) // after serveConns' cleanup, registered later
	sock := filepath.Join(dir, "clamd.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	return "unix:" + sock, ln
}

// serveConns accepts connections on ln, each served by serve in a
// goroutine of its own, until the test ends; then it closes ln and every
// connection still open, so that peers waiting on them fail at once.
func serveConns(t *testing.T, ln net.Listener, serve func(net.Conn)) {
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go serve(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
}

// get fetches a path of airlock's HTTP listener.
func (g *gateway) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + g.httpAddr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// readiness is the JSON of /readyz.
type readiness struct {
	Ready  bool              `json:"ready"`
	Checks map[string]string `json:"checks"`
	Notes  map[string]string `json:"notes"`
}

func (g *gateway) readyz(t *testing.T) (int, readiness) {
	t.Helper()
	code, body := g.get(t, "/readyz")
	var r readiness
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("/readyz: %v\n%s", err, body)
	}
	return code, r
}

// waitEvent waits (bounded) for an audit event after seq of kind about
// transfer id whose detail values contain those of match.
func (g *gateway) waitEvent(t *testing.T, after int64, kind, id string, match map[string]string) ledger.Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, ev := range g.events() {
			if ev.Seq > after && ev.Kind == kind && ev.TransferID == id && detailHas(ev, match) {
				return ev
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s audit event %v for transfer %s within 20s\n%s", kind, match, id, g.diagnosis(g.transfers()))
		}
		time.Sleep(pollEvery)
	}
}

func detailHas(ev ledger.Event, match map[string]string) bool {
	for k, v := range match {
		if !strings.Contains(ev.Detail[k], v) {
			return false
		}
	}
	return true
}

// eventsOf returns the audit events of transfer id, oldest first.
func (g *gateway) eventsOf(id string) []ledger.Event {
	var out []ledger.Event
	for _, ev := range g.events() {
		if ev.TransferID == id {
			out = append(out, ev)
		}
	}
	return out
}

// auditVerifies runs `airlock audit verify`.
func (g *gateway) auditVerifies(t *testing.T) {
	t.Helper()
	if out, errOut, err := g.airlock("audit", "verify"); err != nil {
		t.Errorf("audit verify: %v\n%s%s", err, out, errOut)
	}
}

// put uploads files (local path → remote name) in one OpenSSH batch.
func (g *gateway) put(t *testing.T, user string, key clientKey, files map[string]string) {
	t.Helper()
	var batch strings.Builder
	for _, remote := range slices.Sorted(maps.Keys(files)) {
		if dir := path.Dir(remote); dir != "." && dir != "/" {
			fmt.Fprintf(&batch, "-mkdir %s\n", dir)
		}
		fmt.Fprintf(&batch, "put %s %s\n", files[remote], remote)
	}
	if out, err := g.sftpBatch(user, key, batch.String()); err != nil {
		t.Fatalf("sftp: %v\n%s", err, out)
	}
}

// startAcme starts a gateway configured by o with one more supplier, acme,
// as spec says, with a fresh key, which it returns: what most tests need.
func startAcme(t *testing.T, o gatewayOpts, spec supplierSpec) (*gateway, clientKey) {
	t.Helper()
	key := newClientKey(t)
	spec.name, spec.keys = "acme", []clientKey{key}
	o.suppliers = append(o.suppliers, spec)
	g := newGateway(t, o)
	g.start()
	return g, key
}
