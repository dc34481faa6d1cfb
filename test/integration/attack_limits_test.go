package integration

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/sftptest"
)

// The attacks of issue 19 by an authenticated supplier, mallory (an egress
// supplier), on the real binary. In each, the process survives, another
// supplier's upload during the attack succeeds, nothing is written outside
// the stores and the audit chain verifies.

// attack is a gateway with mallory, whose egress store holds big.bin and a
// directory of many files, and acme, who only uploads.
type attack struct {
	g       *gateway
	mallory clientKey
	acme    clientKey
	fence   *fence
	uploads atomic.Int32
}

const bigFile = 4 << 20

// SFTP packet types sftptest does not name.
const (
	fxpReaddir = 12
	fxpName    = 104
)

func startAttack(t *testing.T, sftpExtra string, listing int) *attack {
	t.Helper()
	egress := t.TempDir()
	writeFile(t, filepath.Join(egress, "big.bin"), strings.Repeat("x", bigFile))
	for i := range listing {
		writeFile(t, filepath.Join(egress, "many", fmt.Sprintf("%04d-%s.csv", i, strings.Repeat("n", 120))), "1\n")
	}
	a := &attack{mallory: newClientKey(t), acme: newClientKey(t)}
	a.g = newGateway(t, gatewayOpts{sftpExtra: sftpExtra, suppliers: []supplierSpec{
		{name: "mallory", keys: []clientKey{a.mallory}, egress: egress},
		{name: "acme", keys: []clientKey{a.acme}},
	}})
	a.g.start()
	a.fence = newFence(t, a.g, "mallory", "acme")
	return a
}

// legitUpload uploads a file as acme, which must work.
func (a *attack) legitUpload(t *testing.T) {
	t.Helper()
	n := a.uploads.Add(1)
	local, _ := randomFile(t, 64<<10)
	name := fmt.Sprintf("/legit-%d.bin", n)
	if out, err := a.g.sftpBatch("acme", a.acme, fmt.Sprintf("put %s %s\n", local, name)); err != nil {
		t.Fatalf("acme's upload during the attack: %v\n%s", err, out)
	}
	a.g.waitTransfer(t, "acme", name, 30*time.Second, "acme's upload recorded", func(tr ledger.Transfer) bool { return tr.Size == 64<<10 })
}

// survived checks the aftermath: the process runs, nothing was written
// outside the stores, the audit chain verifies.
func (a *attack) survived(t *testing.T) {
	t.Helper()
	select {
	case <-a.g.proc.Exited():
		t.Fatalf("airlock exited during the attack\n%s", a.g.logTail(40))
	default:
	}
	a.fence.check(t)
	a.g.auditVerifies(t)
}

// rssKiB is the resident set of the airlock process.
func (a *attack) rssKiB(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", a.g.proc.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatal("no VmRSS in /proc status")
	return 0
}

// limitEvents counts the limit.reached audit events of one limit.
func (a *attack) limitEvents(limit string) int {
	n := 0
	for _, ev := range a.g.events() {
		if ev.Kind == "limit.reached" && ev.Detail["limit"] == limit {
			n++
		}
	}
	return n
}

// rawSession is an SFTP session on conn driven by hand: requests are
// written without waiting for answers, as an attacker would.
type rawSession struct {
	in  io.WriteCloser
	out io.Reader
	id  uint32
}

func openRaw(conn *ssh.Client) (*rawSession, error) {
	sess, err := conn.NewSession()
	if err != nil {
		return nil, err
	}
	in, err := sess.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := sess.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := sess.RequestSubsystem("sftp"); err != nil {
		return nil, err
	}
	r := &rawSession{in: in, out: out}
	if err := r.send(sftptest.FXPInit); err != nil {
		return nil, err
	}
	if typ, _, err := r.recv(); err != nil || typ != sftptest.FXPVersion {
		return nil, fmt.Errorf("INIT answered with %d: %v", typ, err)
	}
	return r, nil
}

func (r *rawSession) send(typ byte, fields ...any) error {
	r.id++
	if typ == sftptest.FXPInit {
		r.id = 3 // the version
	}
	_, err := r.in.Write(sftptest.Packet(typ, r.id, fields...))
	return err
}

// recv returns the next answer's type and body after the request id.
func (r *rawSession) recv() (byte, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r.out, hdr[:]); err != nil {
		return 0, nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(r.out, body); err != nil {
		return 0, nil, err
	}
	if len(body) < 5 {
		return 0, nil, errors.New("short answer")
	}
	return body[0], body[5:], nil
}

// handle reads the handle off a HANDLE answer's body.
func handleOf(body []byte) string {
	n := binary.BigEndian.Uint32(body)
	return string(body[4 : 4+n])
}

// statusMsg reads a STATUS answer's code and message.
func statusMsg(body []byte) (uint32, string) {
	code := binary.BigEndian.Uint32(body)
	n := binary.BigEndian.Uint32(body[4:])
	return code, string(body[8 : 8+n])
}

func dialMallory(t *testing.T, a *attack) *ssh.Client {
	t.Helper()
	conn, err := sshDial(a.g, "mallory", a.mallory)
	if err != nil {
		t.Fatalf("mallory's login: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// setNofile sets the airlock process's descriptor limit; the hard limit
// stays, so that it can be raised again.
func (a *attack) setNofile(t *testing.T, n uint64) {
	t.Helper()
	var old unix.Rlimit
	if err := unix.Prlimit(a.g.proc.Pid(), unix.RLIMIT_NOFILE, nil, &old); err != nil {
		t.Fatalf("prlimit: %v", err)
	}
	if err := unix.Prlimit(a.g.proc.Pid(), unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: n, Max: old.Max}, nil); err != nil {
		t.Fatalf("prlimit: %v", err)
	}
}

// openFDs counts the airlock process's open descriptors.
func (a *attack) openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", a.g.proc.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// TestAttackOpenHandles: 20,000 OPENs of a download, pipelined over eight
// sessions, with the process held to 1,024 descriptors. Before the limits,
// the descriptors ran out and the next accept took the gateway down; now
// the supplier gets its 512 handles and a clear refusal for the rest.
func TestAttackOpenHandles(t *testing.T) {
	t.Parallel()
	const perSupplier = 512
	a := startAttack(t, fmt.Sprintf("  max_handles_per_supplier: %d\n  max_handles_per_node: 768\n", perSupplier), 0)
	a.setNofile(t, 1024)

	const conns, perConn, opens = 2, 4, 2500
	var granted, refused atomic.Int64
	var mu sync.Mutex
	var other []string
	var wg sync.WaitGroup
	for range conns {
		conn := dialMallory(t, a)
		for range perConn {
			r, err := openRaw(conn)
			if err != nil {
				t.Fatalf("mallory's session: %v", err)
			}
			wg.Go(func() {
				for range opens {
					if r.send(sftptest.FXPOpen, "/download/big.bin", uint32(sftptest.FXFRead), uint32(0)) != nil {
						return
					}
				}
			})
			wg.Go(func() {
				for range opens {
					typ, body, err := r.recv()
					switch {
					case err != nil:
						mu.Lock()
						other = append(other, err.Error())
						mu.Unlock()
						return
					case typ == sftptest.FXPHandle:
						granted.Add(1)
						continue
					}
					if code, msg := statusMsg(body); code == sftptest.FXFailure && strings.Contains(msg, "too many open handles") {
						refused.Add(1)
						continue
					} else {
						mu.Lock()
						other = append(other, fmt.Sprintf("status %d %q", code, msg))
						mu.Unlock()
					}
				}
			})
		}
	}
	eventually(t, 60*time.Second, "mallory to hold its handles", func() bool { return granted.Load() >= perSupplier })
	a.legitUpload(t) // while mallory holds every handle it may
	wg.Wait()
	if len(other) > 0 {
		t.Errorf("%d answers were neither a handle nor the limit's status, such as %s", len(other), other[0])
	}
	if granted.Load() != perSupplier || refused.Load() != conns*perConn*opens-perSupplier {
		t.Errorf("%d opens granted and %d refused, want %d and %d", granted.Load(), refused.Load(), perSupplier, conns*perConn*opens-perSupplier)
	}
	counted := 0.0
	for _, limit := range []string{"session", "supplier", "node"} {
		counted += a.g.metric(`airlock_sftp_limit_refusals_total{limit="handles_per_` + limit + `"}`)
	}
	if counted != float64(refused.Load()) {
		t.Errorf("handle limit refusals metric %v, want %d", counted, refused.Load())
	}
	// Audited once per session and limit, however many refusals.
	if n := a.limitEvents("handles_per_supplier"); n < 1 || n > conns*perConn {
		t.Errorf("%d limit.reached events for handles_per_supplier, want 1 to %d", n, conns*perConn)
	}
	t.Logf("descriptors open with mallory holding %d handles: %d", granted.Load(), a.openFDs(t))
	a.survived(t)
}

// TestAttackAcceptEMFILE: with no descriptor left for the next accept, the
// gateway backs off and goes on, SFTP and HTTP alike; SFTP used to exit.
func TestAttackAcceptEMFILE(t *testing.T) {
	t.Parallel()
	a := startAttack(t, "", 0)
	a.setNofile(t, uint64(a.openFDs(t)+2))
	// More connections to each port than there are descriptors to spare:
	// the process may open or close one of its own after it was counted.
	var conns []net.Conn
	for range 8 {
		for _, addr := range []string{a.g.sftpAddr, a.g.httpAddr} {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
	}
	eventually(t, 30*time.Second, "both accepts to fail for want of descriptors", func() bool {
		log := a.g.log.String()
		return strings.Contains(log, "accept failed; backing off") && strings.Contains(log, "http: Accept error")
	})
	for _, c := range conns {
		c.Close()
	}
	a.setNofile(t, 4096)
	eventually(t, 30*time.Second, "the accept errors in the metrics", func() bool {
		return a.g.metric("airlock_sftp_accept_errors_total") > 0
	})
	a.legitUpload(t)
	a.survived(t)
}

// TestAttackChannels: a thousand SFTP sessions on one connection. They used
// to be served, all of them (10,000 took 840 MB); now four are, and the
// rest rejected as a resource shortage.
func TestAttackChannels(t *testing.T) {
	t.Parallel()
	a := startAttack(t, "", 0)
	before := a.rssKiB(t)
	conn := dialMallory(t, a)
	const tries = 1000
	opened, rejected := 0, 0
	for range tries {
		sess, err := conn.NewSession()
		var oce *ssh.OpenChannelError
		switch {
		case err == nil:
			opened++
			t.Cleanup(func() { sess.Close() })
			if err := sess.RequestSubsystem("sftp"); err != nil {
				t.Fatalf("sftp on channel %d: %v", opened, err)
			}
		case errors.As(err, &oce) && oce.Reason == ssh.ResourceShortage && strings.Contains(oce.Message, "too many channels"):
			rejected++
		default:
			t.Fatalf("channel %d: %v", opened+rejected+1, err)
		}
	}
	if opened != 4 || rejected != tries-4 {
		t.Errorf("%d channels opened and %d rejected, want 4 and %d", opened, rejected, tries-4)
	}
	a.legitUpload(t)
	during := a.rssKiB(t)
	t.Logf("RSS %d KiB before, %d KiB with %d channels asked for", before, during, tries)
	if during-before > 64<<10 {
		t.Errorf("RSS grew by %d KiB, want under 64 MiB", during-before)
	}
	if got := a.g.metric(`airlock_sftp_limit_refusals_total{limit="channels_per_connection"}`); got != tries-4 {
		t.Errorf("channels_per_connection refusals metric %v, want %d", got, tries-4)
	}
	if n := a.limitEvents("channels_per_connection"); n != 1 {
		t.Errorf("%d limit.reached events for channels_per_connection, want 1 for the connection", n)
	}
	a.survived(t)
}

// stall opens /download/big.bin in a session of conn and sends READs of it
// without ever reading an answer, until the writes block; sent counts the
// requests that went out.
func stall(conn *ssh.Client, sent *atomic.Int64) error {
	r, err := openRaw(conn)
	if err != nil {
		return err
	}
	if err := r.send(sftptest.FXPOpen, "/download/big.bin", uint32(sftptest.FXFRead), uint32(0)); err != nil {
		return err
	}
	typ, body, err := r.recv()
	if err != nil || typ != sftptest.FXPHandle {
		return fmt.Errorf("open big.bin: type %d: %v", typ, err)
	}
	h := handleOf(body)
	go func() {
		// Eight requests an SSH packet: one each costs the client (and
		// the test) eight times the packets for the same bytes.
		var batch []byte
		for i := uint64(0); ; i++ {
			r.id++
			batch = append(batch, sftptest.Packet(sftptest.FXPRead, r.id, h, (i*(256<<10))%bigFile, uint32(256<<10))...)
			if i%8 < 7 {
				continue
			}
			if _, err := r.in.Write(batch); err != nil {
				return
			}
			sent.Add(8)
			batch = batch[:0]
		}
	}()
	return nil
}

// settled waits until n stops growing for a second.
func settled(t *testing.T, n *atomic.Int64) {
	t.Helper()
	last := int64(-1)
	eventually(t, 60*time.Second, "the stalled sessions to stop sending", func() bool {
		now := n.Load()
		if now == last {
			return true
		}
		last = now
		time.Sleep(time.Second)
		return false
	})
}

// TestAttackStalledSessions: 120 sessions that ask for data and never read
// it. Each stops reading requests once its answers are not read; what the
// SSH layer holds for it, up to its window, is let go when the connection
// is closed after write_stall_timeout. Keepalives never caught these: the
// client's SSH layer answers them.
func TestAttackStalledSessions(t *testing.T) {
	t.Parallel()
	a := startAttack(t, "  max_connections_per_ip: 100\n  write_stall_timeout: 5s\n", 0)
	before := a.rssKiB(t)
	const conns, perConn = 30, 4
	var sent atomic.Int64
	var clients []*ssh.Client
	for range conns {
		conn := dialMallory(t, a)
		clients = append(clients, conn)
		for range perConn {
			if err := stall(conn, &sent); err != nil {
				t.Fatalf("stalled session: %v", err)
			}
		}
	}
	settled(t, &sent)
	during := a.rssKiB(t)
	a.legitUpload(t)
	eventually(t, 60*time.Second, "airlock to close the stalled connections", func() bool {
		return a.g.metric("airlock_sftp_sessions") == 0
	})
	if got := a.g.metric(`airlock_sftp_limit_refusals_total{limit="write_stall_timeout"}`); got < conns {
		t.Errorf("write_stall_timeout metric %v, want at least one for each of %d connections", got, conns)
	}
	// Handed back to the system a few seconds after the closing.
	var after int64
	eventually(t, 30*time.Second, "the stalled sessions' memory to be returned", func() bool {
		after = a.rssKiB(t)
		return after-before < (during-before)/2
	})
	time.Sleep(3 * time.Second) // the return goes on: log where it ends
	after = a.rssKiB(t)
	t.Logf("RSS %d KiB before, %d KiB with %d stalled sessions (%d requests sent, %d KiB a session), %d KiB once they were closed",
		before, during, conns*perConn, sent.Load(), (during-before)/(conns*perConn), after)
	// The SSH layer's window is 2 MiB a channel; ours, what a session
	// was writing and reading. Measured: 1.7 to 3.7 MiB a session.
	const perSession, bound = 6 << 10, 100 << 10
	if during-before > conns*perConn*perSession+bound {
		t.Errorf("RSS grew by %d KiB with %d stalled sessions, want under %d KiB", during-before, conns*perConn, conns*perConn*perSession+bound)
	}
	a.survived(t)
	_ = clients
}

// TestAttackDirHandles: 512 directory handles on a directory of 1,000
// entries, each read once. They used to hold a whole listing each; now none
// once its page is served.
func TestAttackDirHandles(t *testing.T) {
	t.Parallel()
	const entries = 1000
	a := startAttack(t, "", entries)
	before := a.rssKiB(t)
	const conns, perConn, dirs = 2, 4, 64
	var wg sync.WaitGroup
	var held, refused atomic.Int64
	for range conns {
		conn := dialMallory(t, a)
		for range perConn {
			r, err := openRaw(conn)
			if err != nil {
				t.Fatal(err)
			}
			wg.Go(func() {
				for range dirs {
					if r.send(sftptest.FXPOpendir, "/download/many") != nil {
						return
					}
					typ, body, err := r.recv()
					if err != nil || typ != sftptest.FXPHandle {
						refused.Add(1)
						continue
					}
					if r.send(fxpReaddir, handleOf(body)) != nil {
						return
					}
					if typ, _, err := r.recv(); err == nil && typ == fxpName {
						held.Add(1)
					}
				}
			})
		}
	}
	wg.Wait()
	during := a.rssKiB(t)
	a.legitUpload(t)
	t.Logf("RSS %d KiB before, %d KiB with %d directory handles read once on %d entries (%d refused)", before, during, held.Load(), entries, refused.Load())
	if held.Load() != conns*perConn*dirs {
		t.Errorf("%d directory handles read, want %d", held.Load(), conns*perConn*dirs)
	}
	// Measured: 19 MiB more; 268 MiB before, when every handle held its
	// listing.
	const bound = 64 << 10
	if during-before > bound {
		t.Errorf("RSS grew by %d KiB, want under %d KiB", during-before, bound)
	}
	a.survived(t)
}
