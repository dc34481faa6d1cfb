// Package integration runs the airlock binary against real peers: the
// OpenSSH sftp client, rclone and the versitygw S3 server. With CI=true a
// missing peer fails the test instead of skipping it.
package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
)

var airlockBin string

func TestMain(m *testing.M) {
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

// requireTool finds a peer program, failing under CI=true and skipping
// otherwise when it is missing.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if gopath, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is required but not installed (make peers installs it)", name)
	}
	t.Skipf("%s not installed; run make peers (with CI=true this fails)", name)
	return ""
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitTCP(t *testing.T, addr string, exited <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			t.Fatalf("process serving %s exited early", addr)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s", addr)
}

// clientKey is an ed25519 key pair made by the real ssh-keygen.
type clientKey struct {
	path       string // private key
	authorized string // public key line
	expires    string // optional expiry written to ssh_keys in the mapping form ("2027-03-31")
}

func newClientKey(t *testing.T) clientKey {
	t.Helper()
	keygen := requireTool(t, "ssh-keygen")
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
}

type gatewayOpts struct {
	sftpExtra   string // more keys of the sftp section, as YAML lines indented by two spaces
	extra       string // more top-level sections of airlock.yaml
	landing     string // default: a directory in the tree
	maxFileSize string
	env         []string
	suppliers   []supplierSpec
}

// gateway is an airlock process with its own configuration tree.
type gateway struct {
	t        *testing.T
	dir      string
	cfg      string
	sftpAddr string
	httpAddr string
	landing  string
	env      []string

	cmd    *exec.Cmd
	exited chan struct{}
	log    *syncBuffer
}

func newGateway(t *testing.T, o gatewayOpts) *gateway {
	t.Helper()
	dir := t.TempDir()
	g := &gateway{t: t, dir: dir, cfg: filepath.Join(dir, "airlock.yaml"),
		sftpAddr: freeAddr(t), httpAddr: freeAddr(t), landing: o.landing, env: o.env}
	if g.landing == "" {
		g.landing = filepath.Join(dir, "state", "landing")
	}
	maxSize := o.maxFileSize
	if maxSize == "" {
		maxSize = "5GB"
	}
	writeFile(t, g.cfg, fmt.Sprintf(`sftp:
  listen: %q
%shttp:
  listen: %q
database: "sqlite:state/airlock.db"
landing: %q
quarantine: "state/quarantine"
limits:
  max_file_size: %q
suppliers_dir: "suppliers"
%s`, g.sftpAddr, o.sftpExtra, g.httpAddr, g.landing, maxSize, o.extra))
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
		body := fmt.Sprintf("name: %s\nemail: %s@example.org\nallowed_ips: [%s]\nssh_keys: [%s]\ndestination:\n  url: %q\n",
			s.name, s.name, quoteAll(ips), strings.Join(keys, ", "), filepath.Join(dir, "delivered", s.name))
		if s.egress != "" {
			body += fmt.Sprintf("egress:\n  url: %q\n", s.egress)
		}
		writeFile(t, filepath.Join(dir, "suppliers", s.name+".yaml"), body)
	}
	t.Cleanup(g.stop)
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
	g.log = &syncBuffer{}
	g.cmd = exec.Command(airlockBin, "serve", "--config", g.cfg)
	g.cmd.Env = append(os.Environ(), g.env...)
	g.cmd.Stdout, g.cmd.Stderr = g.log, g.log
	if err := g.cmd.Start(); err != nil {
		g.t.Fatal(err)
	}
	g.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		_ = cmd.Wait()
		close(exited)
	}(g.cmd, g.exited)
	waitTCP(g.t, g.sftpAddr, g.exited)
	waitTCP(g.t, g.httpAddr, g.exited)
}

// stop ends airlock gracefully; the log is shown if the test failed.
func (g *gateway) stop() {
	if g.cmd == nil {
		return
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(15 * time.Second):
		_ = g.cmd.Process.Kill()
		<-g.exited
	}
	if g.t.Failed() {
		g.t.Logf("airlock log:\n%s", g.log.String())
	}
	g.cmd = nil
}

// kill ends airlock with SIGKILL: no cleanup runs.
func (g *gateway) kill() {
	g.t.Helper()
	_ = g.cmd.Process.Kill()
	<-g.exited
	g.cmd = nil
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

// events reads the audit trail.
func (g *gateway) events() []ledger.Event {
	g.t.Helper()
	l, err := ledger.Open(context.Background(), "sqlite:"+filepath.Join(g.dir, "state", "airlock.db"))
	if err != nil {
		g.t.Fatal(err)
	}
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
	bin := requireTool(g.t, "sftp")
	args := append([]string{"-b", "-", "-P", g.port(), "-i", key.path,
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
		"-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR"}, extra...)
	cmd := exec.Command(bin, append(args, user+"@127.0.0.1")...)
	cmd.Stdin = strings.NewReader(batch)
	return cmd
}

// rclone runs rclone with an sftp remote "air:" pointing at the gateway.
func (g *gateway) rclone(user string, key clientKey, args ...string) (string, error) {
	g.t.Helper()
	bin := requireTool(g.t, "rclone")
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
