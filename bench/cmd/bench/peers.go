package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// findTool locates a peer program like the integration tests do: on PATH,
// in the sbin directories (sshd), or in GOPATH/bin (versitygw).
func findTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return filepath.Abs(p) // sshd refuses to re-exec from a relative path
	}
	dirs := []string{"/usr/sbin", "/usr/local/sbin", "/sbin"}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		dirs = append(dirs, filepath.Join(strings.TrimSpace(string(out)), "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not installed (scripts/install-peers.sh openssh-server, run by make bench, installs it)", name)
}

// freeAddr returns a free 127.0.0.1 port. The listener is closed before
// the server binds it; nothing else on this machine is expected to race.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// proc is a server process the bench started and must stop.
type proc struct {
	name   string
	cmd    *exec.Cmd
	log    string // path of its combined output
	exited chan struct{}
}

// startProc starts a server with its output in logPath. The child gets
// SIGKILL if the bench dies without cleaning up.
func startProc(name, logPath string, env []string, bin string, args ...string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	return startCmd(name, logPath, cmd)
}

// startCmd is startProc for a command set up by the caller (its
// credentials, directory).
func startCmd(name, logPath string, cmd *exec.Cmd) (*proc, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = lf, lf
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		lf.Close()
		close(p.exited)
	}()
	return p, nil
}

// waitTCP waits until addr accepts connections, failing early if the
// process exits.
func (p *proc) waitTCP(addr string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited early:\n%s", p.name, p.tail())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s does not listen on %s:\n%s", p.name, addr, p.tail())
}

// tail is the end of the process's log, for error messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// stop sends SIGTERM and waits, then SIGKILL. Safe to call twice.
func (p *proc) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// peakRSS is VmHWM of the running process in bytes.
func (p *proc) peakRSS() (int64, error) { return p.status("VmHWM") }

// rss is VmRSS of the running process in bytes.
func (p *proc) rss() (int64, error) { return p.status("VmRSS") }

// status reads a size in kB from /proc/<pid>/status, in bytes.
func (p *proc) status(field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc status", field)
}

// keyPair is an ed25519 key made by ssh-keygen.
type keyPair struct {
	path       string // private key
	authorized string // public key line
}

func keygen(bin, path, comment string) (keyPair, error) {
	if out, err := exec.Command(bin, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path).CombinedOutput(); err != nil {
		return keyPair{}, fmt.Errorf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(path + ".pub")
	if err != nil {
		return keyPair{}, err
	}
	return keyPair{path: path, authorized: strings.TrimSpace(string(pub))}, nil
}

// chrootSafe reports why sshd would refuse dir (or a directory below it) as
// a ChrootDirectory: every component must be owned by root and not
// writable by group or others.
func chrootSafe(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for p := abs; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 0 || fi.Mode().Perm()&0o022 != 0 {
			return fmt.Errorf("%s is not root-owned or is group/world-writable (mode %v)", p, fi.Mode())
		}
		if p == "/" {
			return nil
		}
	}
}

// sshdServer is OpenSSH's sshd serving internal-sftp from a chroot laid
// out like an egress supplier's view of airlock: /upload and /download.
type sshdServer struct {
	*proc
	addr   string
	user   string
	root   string // the chroot
	upload string // root/upload, where uploads land
}

func startSSHD(ctx context.Context, tools *toolset, dir string, client keyPair, user string) (*sshdServer, error) {
	// sshd needs its privilege-separation directory, which is compiled in.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	hostKey, err := keygen(tools.keygen, filepath.Join(dir, "ssh_host_ed25519_key"), "bench-sshd")
	if err != nil {
		return nil, err
	}
	s := &sshdServer{user: user, root: filepath.Join(dir, "chroot")}
	s.upload = filepath.Join(s.root, "upload")
	for _, d := range []string{s.root, s.upload, filepath.Join(s.root, "download")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := chrootSafe(s.root); err != nil {
		return nil, fmt.Errorf("sshd will not chroot to %s: %w (pass -tmp with a root-owned parent)", s.root, err)
	}
	authKeys := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authKeys, []byte(client.authorized+"\n"), 0o600); err != nil {
		return nil, err
	}
	if s.addr, err = freeAddr(); err != nil {
		return nil, err
	}
	// MaxStartups is raised so that 50 simultaneous logins from one address
	// are not dropped by the default 10:30:100 early-drop rule; airlock's
	// per-address cap is raised to match (see writeAirlockTree).
	conf := fmt.Sprintf(`ListenAddress %s
HostKey %s
PidFile %s
AuthorizedKeysFile %s
AllowUsers %s
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
Ciphers aes128-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr
MaxStartups 200
MaxSessions 10
AllowTcpForwarding no
X11Forwarding no
PrintMotd no
LogLevel INFO
Subsystem sftp internal-sftp
ChrootDirectory %s
ForceCommand internal-sftp
`, s.addr, hostKey.path, filepath.Join(dir, "sshd.pid"), authKeys, user, s.root)
	confPath := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	if out, err := exec.CommandContext(ctx, tools.sshd, "-t", "-f", confPath).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("sshd -t rejects the generated config: %v\n%s", err, out)
	}
	if s.proc, err = startProc("sshd", filepath.Join(dir, "sshd.log"), nil, tools.sshd, "-D", "-e", "-f", confPath); err != nil {
		return nil, err
	}
	if err := s.waitTCP(s.addr); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// versity is a versitygw S3 gateway over a posix directory: each
// sub-directory of root is a bucket, each file an object.
type versity struct {
	*proc
	addr, root     string
	access, secret string
}

func startVersity(tools *toolset, dir string, buckets ...string) (*versity, error) {
	v := &versity{root: filepath.Join(dir, "s3"), access: "benchaccess", secret: "benchsecret0123456789"}
	for _, b := range buckets {
		if err := os.MkdirAll(filepath.Join(v.root, b), 0o755); err != nil {
			return nil, err
		}
	}
	var err error
	if v.addr, err = freeAddr(); err != nil {
		return nil, err
	}
	v.proc, err = startProc("versitygw", filepath.Join(dir, "versitygw.log"), nil, tools.versitygw,
		"--access", v.access, "--secret", v.secret, "--port", v.addr, "posix", v.root)
	if err != nil {
		return nil, err
	}
	if err := v.waitTCP(v.addr); err != nil {
		v.stop()
		return nil, err
	}
	return v, nil
}

func (v *versity) url(bucket string) string {
	return fmt.Sprintf("s3://%s?endpoint=http://%s&use_path_style=true&region=us-east-1", bucket, v.addr)
}

func (v *versity) env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + v.access,
		"AWS_SECRET_ACCESS_KEY=" + v.secret,
		"AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// The bench's airlock suppliers: one upload-only, one with an egress store
// for the download scenario.
const (
	uploader   = "bench"
	downloader = "benchdl"
)

// airlockTree is an airlock configuration tree in its own directory.
type airlockTree struct {
	dir, cfg  string
	sftpAddr  string
	httpAddr  string
	landing   string // the landing location as configured (path or URL)
	delivered string // the suppliers' destinations are directories below it
	database  string // as configured: the ledger, which also holds River's jobs
	egressDir string
	env       []string
}

// treeSpec is what differs between the bench's airlock trees; the zero
// value is one node on its own, with everything in the tree's state
// directory.
type treeSpec struct {
	node       string // default "bench"
	database   string // default a SQLite file in the tree
	landing    string // a path or URL; default a directory in the tree
	quarantine string // default a directory in the tree
	delivered  string // parent of the destinations; default in the tree
	sftpExtra  string // more lines of the sftp section, indented
	perIP      int    // sftp.max_connections_per_ip; default 64
	extra      string // more top-level keys
	env        []string
}

// writeAirlockTree writes airlock.yaml and the two supplier files.
func writeAirlockTree(dir string, spec treeSpec, egressDir string, client, dlClient keyPair) (*airlockTree, error) {
	t := &airlockTree{dir: dir, cfg: filepath.Join(dir, "airlock.yaml"), landing: spec.landing, egressDir: egressDir, env: spec.env,
		delivered: spec.delivered, database: spec.database}
	var err error
	if t.sftpAddr, err = freeAddr(); err != nil {
		return nil, err
	}
	if t.httpAddr, err = freeAddr(); err != nil {
		return nil, err
	}
	node, quarantine := cmp.Or(spec.node, "bench"), cmp.Or(spec.quarantine, "state/quarantine")
	if t.landing == "" {
		t.landing = filepath.Join(dir, "state", "landing")
	}
	if t.delivered == "" {
		t.delivered = filepath.Join(dir, "delivered")
	}
	if t.database == "" {
		t.database = "sqlite:" + filepath.Join(dir, "state", "airlock.db")
	}
	// All 50 concurrent sessions come from 127.0.0.1, whereas in production
	// they come from many suppliers: the per-address cap (default 20) is
	// raised for that scenario, as sshd's MaxStartups is. Scenario 1c needs
	// the compatible algorithm profile (aes128-ctr).
	cfg := fmt.Sprintf(`node: %q
sftp:
  listen: %q
  algorithms: compatible
  max_connections_per_ip: %d
  max_unauthenticated: 128
  max_unauthenticated_per_ip: 128
  max_unauthenticated_per_network: 128
%shttp:
  listen: %q
database: %q
landing: %q
quarantine: %q
limits:
  max_file_size: "6GB"
suppliers_dir: "suppliers"
%s`, node, t.sftpAddr, cmp.Or(spec.perIP, 64), spec.sftpExtra, t.httpAddr, t.database, t.landing, quarantine, spec.extra)
	files := map[string]string{
		t.cfg: cfg,
		filepath.Join(dir, "suppliers", uploader+".yaml"): fmt.Sprintf(
			"name: %s\nemail: bench@example.org\nallowed_ips: [\"127.0.0.1/32\"]\nssh_keys: [%q]\ndestination:\n  url: %q\n",
			uploader, client.authorized, filepath.Join(t.delivered, uploader)),
		filepath.Join(dir, "suppliers", downloader+".yaml"): fmt.Sprintf(
			"name: %s\nemail: bench@example.org\nallowed_ips: [\"127.0.0.1/32\"]\nssh_keys: [%q]\ndestination:\n  url: %q\negress:\n  url: %q\n",
			downloader, dlClient.authorized, filepath.Join(t.delivered, downloader), egressDir),
	}
	if err := writeFiles(files); err != nil {
		return nil, err
	}
	// An empty datasets directory: serve stops when the default one is
	// missing ("watch datasets: no such file or directory").
	if err := os.MkdirAll(filepath.Join(dir, "datasets"), 0o755); err != nil {
		return nil, err
	}
	return t, nil
}

// writeFiles writes each file, by path, with its directories.
func writeFiles(files map[string]string) error {
	for p, content := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// airlockServer is a running `airlock serve` on a tree.
type airlockServer struct {
	*proc
	tree *airlockTree
}

var serveCount int

func startAirlock(tools *toolset, t *airlockTree) (*airlockServer, error) {
	serveCount++
	p, err := startProc("airlock", filepath.Join(t.dir, fmt.Sprintf("airlock-%d.log", serveCount)), t.env,
		tools.airlock, "serve", "--config", t.cfg)
	if err != nil {
		return nil, err
	}
	s := &airlockServer{proc: p, tree: t}
	for _, addr := range []string{t.sftpAddr, t.httpAddr} {
		if err := p.waitTCP(addr); err != nil {
			p.stop()
			return nil, err
		}
	}
	return s, nil
}

// transfer is the part of `airlock transfers list --json` the bench checks.
type transfer struct {
	ID     string `json:"id"`
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	State  string `json:"state"`
	Error  string `json:"error"`
}

// cli runs an airlock command on the tree and decodes its JSON output
// into v.
func (t *airlockTree) cli(ctx context.Context, airlockBin string, v any, args ...string) error {
	cmd := exec.CommandContext(ctx, airlockBin, append(args, "--json", "--config", t.cfg)...)
	cmd.Env = append(os.Environ(), t.env...)
	what := "airlock " + strings.Join(args, " ")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("%s: %w\n%s", what, err, ee.Stderr)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// transfers returns the ledger's transfers by path (the newest of each).
func (t *airlockTree) transfers(ctx context.Context, airlockBin string) (map[string]transfer, error) {
	var trs []transfer
	if err := t.cli(ctx, airlockBin, &trs, "transfers", "list"); err != nil {
		return nil, err
	}
	byPath := map[string]transfer{}
	for _, tr := range trs { // newest first
		if _, ok := byPath[tr.Path]; !ok {
			byPath[tr.Path] = tr
		}
	}
	return byPath, nil
}

// removeFiles deletes the regular files below dir and keeps the
// directories, so that a running server's layout stays intact.
func removeFiles(dir string) error {
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return os.Remove(p)
		}
		return nil
	})
}

// commandOutput runs a command and returns its trimmed combined output,
// or "unknown".
func commandOutput(name string, args ...string) string {
	out, err := exec.Command(name, args...).CombinedOutput()
	s := strings.TrimSpace(string(out))
	if err != nil && s == "" {
		return "unknown"
	}
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// clockTick is USER_HZ, the unit of the times in /proc/<pid>/stat; it is
// 100 on every Linux architecture Go supports.
const clockTick = 100

// cpuSeconds is the CPU time (user + system) of pid and of its children
// that it has waited for.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b)[i+1:]) // f[0] is field 3 (state)
	if len(f) < 15 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	var ticks int64
	for _, k := range []int{11, 12, 13, 14} { // utime stime cutime cstime
		v, err := strconv.ParseInt(f[k], 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += v
	}
	return float64(ticks) / clockTick, nil
}

// waitNoChildren waits (up to a few seconds) until pid has reaped all its
// children, so that their CPU time shows in its cumulative times.
func waitNoChildren(pid int) {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && hasChildren(pid) {
		time.Sleep(20 * time.Millisecond)
	}
}

func hasChildren(pid int) bool {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			return true
		}
	}
	return false
}
