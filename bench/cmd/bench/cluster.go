package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Scenario 7: airlock nodes on one Postgres and one S3 landing store
// (versitygw) behind HAProxy, with one node and with three.

// clusterNodes is the size of the larger setup.
const clusterNodes = 3

// clusterResult is scenario 7: result's samples, errors and CPU are by
// setup name (setupName), HAProxy's own CPU seconds per run beside them.
type clusterResult struct {
	*result
	haproxyCPU map[string][]float64
	skipped    string // why the scenario did not run
}

func setupName(nodes int) string {
	if nodes == 1 {
		return "1 node"
	}
	return fmt.Sprintf("%d nodes", nodes)
}

// ratio is the larger setup's median aggregate over one node's.
func (c *clusterResult) ratio() float64 {
	return median(c.samples[setupName(clusterNodes)]) / median(c.samples[setupName(1)])
}

// cluster is the shared part of both setups: the database, the S3 store
// holding landing and quarantine, and one configuration tree per node.
type cluster struct {
	b       *bench
	haproxy string // the binary
	dir     string
	vg      *versity
	trees   []*airlockTree // node-1 … node-N
}

// setup is one running setup: its nodes, and HAProxy in front of them.
type setup struct {
	nodes []*airlockServer
	lb    *haproxy
	side  *side
}

// clusterStep runs scenario 7 if it is selected.
func (b *bench) clusterStep(ctx context.Context) (*clusterResult, error) {
	if !b.opts.selected("cluster") {
		return &clusterResult{skipped: "not selected (-only)"}, nil
	}
	logf("scenario: %d sessions × %s through HAProxy, 1 node and %d nodes on one Postgres and one S3 landing store (airlock only)",
		b.opts.sessions, humanSize(b.medium.size), clusterNodes)
	res, err := b.scenarioCluster(ctx)
	if err == nil && res.skipped != "" {
		logf("cluster scenario %s", res.skipped)
	}
	return res, err
}

// scenarioCluster runs opts.sessions concurrent sessions through HAProxy
// to one node and to clusterNodes nodes, alternating which goes first. A
// missing peer skips the scenario.
func (b *bench) scenarioCluster(ctx context.Context) (*clusterResult, error) {
	pgBin, err := postgresBin()
	switch {
	case b.tools.haproxy == "":
		return &clusterResult{skipped: "skipped: haproxy is not installed (scripts/install-peers.sh installs it)"}, nil
	case b.tools.versitygw == "":
		return &clusterResult{skipped: "skipped: versitygw is not installed (scripts/install-peers.sh installs it)"}, nil
	case err != nil:
		return &clusterResult{skipped: "skipped: " + err.Error()}, nil
	}
	// Landed (twice while versitygw assembles a multipart upload) and
	// delivered, for one run at a time.
	if err := b.checkSpace(3*int64(b.opts.sessions)*b.opts.sessionSize+1<<30, "the cluster scenario"); err != nil {
		return &clusterResult{skipped: "skipped: " + err.Error()}, nil
	}
	res := &clusterResult{result: newResult(), haproxyCPU: map[string][]float64{}}
	c := &cluster{b: b, haproxy: b.tools.haproxy, dir: filepath.Join(b.dir, "cluster")}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, err
	}
	pg, err := startPostgres(pgBin)
	if err != nil {
		return nil, err
	}
	defer pg.stop()
	if c.vg, err = startVersity(b.tools, c.dir, "landing", "quarantine"); err != nil {
		return nil, err
	}
	defer c.vg.stop()
	if err := c.writeTrees(pg.dsn); err != nil {
		return nil, err
	}
	for run := 1; run <= b.opts.runs; run++ {
		for _, n := range alternate(run, 1, clusterNodes) {
			if err := c.measure(ctx, n, run, res); err != nil {
				return nil, err
			}
		}
	}
	return res, nil
}

// writeTrees writes node-1 … node-N's trees: their own node name, ports
// and state directory (audit checkpoints and their key), the same host
// key, database, landing, quarantine and destinations.
func (c *cluster) writeTrees(dsn string) error {
	hostKey, err := keygen(c.b.tools.keygen, filepath.Join(c.dir, "ssh_host_ed25519_key"), "bench-cluster")
	if err != nil {
		return err
	}
	// HAProxy connects to the nodes from 127.0.0.1.
	sftpExtra := fmt.Sprintf("  host_keys: [%q]\n  proxy_protocol:\n    trusted: [\"127.0.0.1/32\"]\n", hostKey.path)
	for i := 1; i <= clusterNodes; i++ {
		name := fmt.Sprintf("node-%d", i)
		t, err := writeAirlockTree(filepath.Join(c.dir, name), treeSpec{
			node: name, database: dsn, landing: c.vg.url("landing"), quarantine: c.vg.url("quarantine"),
			delivered: filepath.Join(c.dir, "delivered"), sftpExtra: sftpExtra, env: c.vg.env(),
		}, c.b.egressDir, c.b.client, c.b.dlClient)
		if err != nil {
			return err
		}
		c.trees = append(c.trees, t)
	}
	return nil
}

// measure starts the setup of n nodes, runs the sessions through it,
// stops it and cleans up.
func (c *cluster) measure(ctx context.Context, n, run int, res *clusterResult) error {
	s, err := c.start(ctx, n)
	if err != nil {
		return fmt.Errorf("start %s: %w", setupName(n), err)
	}
	lb0, _ := cpuSeconds(s.lb.cmd.Process.Pid)
	err = c.b.concurrentRun(ctx, s.side, fmt.Sprintf("cluster%d-%d", n, run), run, res.result)
	lb1, _ := cpuSeconds(s.lb.cmd.Process.Pid)
	res.haproxyCPU[s.side.name] = append(res.haproxyCPU[s.side.name], lb1-lb0)
	s.stop()
	if err != nil {
		return err
	}
	if err := s.side.clean(); err != nil {
		return err
	}
	syscall.Sync()
	return nil
}

// start starts nodes 1 to n, one after the other (the first migrates the
// database), and HAProxy in front of them, and logs in once per node.
func (c *cluster) start(ctx context.Context, n int) (*setup, error) {
	s := &setup{}
	for _, t := range c.trees[:n] {
		srv, err := startAirlock(c.b.tools, t)
		if err != nil {
			s.stop()
			return nil, err
		}
		s.nodes = append(s.nodes, srv)
	}
	backends := make([]string, n)
	for i, t := range c.trees[:n] {
		backends[i] = t.sftpAddr
	}
	var err error
	if s.lb, err = startHAProxy(c.haproxy, c.dir, backends); err != nil {
		s.stop()
		return nil, err
	}
	// node-1's tree reads the shared ledger for all of them.
	s.side = c.b.airlockSide(c.trees[0], s.nodes[0])
	s.side.name, s.side.addr = setupName(n), s.lb.addr
	s.side.cpu = func() float64 {
		total, _ := cpuSeconds(s.lb.cmd.Process.Pid)
		for _, srv := range s.nodes {
			cs, _ := cpuSeconds(srv.cmd.Process.Pid)
			total += cs
		}
		return total
	}
	s.side.clean = func() error {
		return errors.Join(c.trees[0].clean(), removeFiles(filepath.Join(c.vg.root, "landing")), removeFiles(filepath.Join(c.vg.root, "quarantine")))
	}
	// HAProxy deals the logins round robin: one reaches each node.
	for range n {
		if _, err := c.b.sftp(ctx, s.side, s.side.up, aesGCM, "pwd\n"); err != nil {
			s.stop()
			return nil, fmt.Errorf("warm-up login: %w", err)
		}
	}
	return s, nil
}

func (s *setup) stop() {
	if s.lb != nil {
		s.lb.stop()
	}
	for _, srv := range s.nodes {
		srv.stop()
	}
}

// haproxy is HAProxy in TCP mode in front of the nodes, sending each a
// PROXY protocol v2 header.
type haproxy struct {
	*proc
	addr string
}

var haproxyCount int

func startHAProxy(bin, dir string, backends []string) (*haproxy, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	haproxyCount++
	var cfg strings.Builder
	fmt.Fprintf(&cfg, `global
  maxconn 1000
defaults
  mode tcp
  timeout connect 10s
  timeout client 1h
  timeout server 1h
listen sftp
  bind %s
  balance roundrobin
`, addr)
	for i, be := range backends {
		fmt.Fprintf(&cfg, "  server node-%d %s send-proxy-v2\n", i+1, be)
	}
	cfgPath := filepath.Join(dir, fmt.Sprintf("haproxy-%d.cfg", haproxyCount))
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o644); err != nil {
		return nil, err
	}
	// -db: in the foreground, so that it is the bench's child.
	p, err := startProc("haproxy", filepath.Join(dir, fmt.Sprintf("haproxy-%d.log", haproxyCount)), nil, bin, "-db", "-f", cfgPath)
	if err != nil {
		return nil, err
	}
	if err := p.waitTCP(addr); err != nil {
		p.stop()
		return nil, err
	}
	return &haproxy{proc: p, addr: addr}, nil
}

// postgresBin is the bin directory of the newest Postgres server
// installed, in Debian's layout.
func postgresBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	best, bestVersion := "", -1
	for _, d := range dirs {
		v, err := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		if err != nil || v <= bestVersion {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			best, bestVersion = d, v
		}
	}
	if best == "" {
		return "", errors.New("no Postgres server installed (scripts/install-peers.sh installs it)")
	}
	return best, nil
}

// postgres is a throwaway Postgres server, as scripts/with-postgres.sh
// starts one: a fresh cluster in a temporary directory, reachable only
// through a Unix socket there, removed afterwards.
type postgres struct {
	*proc
	dir, dsn string
}

// startPostgres runs the server as the postgres user (Postgres refuses to
// run as root), with its default settings but more connections, for
// three nodes' pools.
func startPostgres(bin string) (*postgres, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("postgres user: %w", err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	// Not below the bench's directory, which may be in root's home where
	// the postgres user cannot go; and a socket's path must stay short.
	dir, err := os.MkdirTemp("", "airlock-bench-pg-")
	if err != nil {
		return nil, err
	}
	pg := &postgres{dir: dir, dsn: "postgres://postgres@/airlock?host=" + dir}
	fail := func(err error) (*postgres, error) {
		pg.stop()
		return nil, err
	}
	if err := os.Chown(dir, int(uid), int(gid)); err != nil {
		return fail(err)
	}
	as := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		return cmd
	}
	data := filepath.Join(dir, "data")
	if out, err := as("initdb", "-D", data, "-A", "trust", "-U", "postgres").CombinedOutput(); err != nil {
		return fail(fmt.Errorf("initdb: %v\n%s", err, out))
	}
	pg.proc, err = startCmd("postgres", filepath.Join(dir, "postgres.log"),
		as("postgres", "-D", data, "-c", "listen_addresses=", "-c", "unix_socket_directories="+dir, "-c", "max_connections=300"))
	if err != nil {
		return fail(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for as("pg_isready", "-q", "-h", dir).Run() != nil {
		select {
		case <-pg.exited:
			return fail(fmt.Errorf("postgres exited early:\n%s", pg.tail()))
		default:
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("postgres is not ready after 30s:\n%s", pg.tail()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if out, err := as("createdb", "-h", dir, "-U", "postgres", "airlock").CombinedOutput(); err != nil {
		return fail(fmt.Errorf("createdb: %v\n%s", err, out))
	}
	return pg, nil
}

// stop stops the server (every node has gone) and removes its directory.
func (pg *postgres) stop() {
	if pg.proc != nil {
		pg.proc.stop()
	}
	os.RemoveAll(pg.dir)
}
