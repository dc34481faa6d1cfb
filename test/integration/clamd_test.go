package integration

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/testpeer"
)

// clamdServer is a real clamd (Debian's clamav-daemon) on a unix socket,
// with the tiny signature database of internal/scan/testdata/clamd, so
// that no official signatures are needed:
//   - Airlock.Test.EICAR: the EICAR string at the start of a file;
//   - Airlock.Test.Blocked: the MD5 and size of internal/scan/testdata/blocked.txt.
//
// clamd reports them with ".UNOFFICIAL" appended.
type clamdServer struct {
	t    *testing.T
	dir  string
	conf string
	addr string            // for scanner.clamd
	proc *testpeer.Process // nil while stopped
}

// eicar is the EICAR test file, split so that this source file is not
// itself taken for one.
const eicar = `X5O!P%@AP[4\PZX54(P^)7CC)7}$` + `EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

func startClamd(t *testing.T) *clamdServer {
	t.Helper()
	testpeer.Require(t, "clamd")
	// Not t.TempDir: a unix socket path must stay under 108 bytes.
	dir, err := os.MkdirTemp("", "clamd")
	if err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "db")
	if err := os.CopyFS(db, os.DirFS("../../internal/scan/testdata/clamd")); err != nil {
		t.Fatalf("copy the test signatures: %v", err)
	}
	sock := filepath.Join(dir, "clamd.sock")
	s := &clamdServer{t: t, dir: dir, conf: filepath.Join(dir, "clamd.conf"), addr: "unix:" + sock}
	// As root without a clamav user: no User, and every path in dir. No
	// SelfCheck: the database does not change during a test.
	writeFile(t, s.conf, fmt.Sprintf(`Foreground yes
LocalSocket %s
DatabaseDirectory %s
PidFile %s
TemporaryDirectory %s
LogFile %s
LogVerbose yes
SelfCheck 0
`, sock, db, filepath.Join(dir, "clamd.pid"), dir, filepath.Join(dir, "clamd.log")))
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("clamd log:\n%s", s.output())
		}
		os.RemoveAll(dir)
	})
	s.start()
	return s
}

// start runs clamd and waits (bounded) until it answers PING.
func (s *clamdServer) start() {
	s.t.Helper()
	out, err := os.OpenFile(filepath.Join(s.dir, "clamd.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(testpeer.Require(s.t, "clamd"), "--config-file="+s.conf)
	cmd.Stdout, cmd.Stderr = out, out
	s.proc = testpeer.Start(s.t, cmd)
	deadline := time.Now().Add(30 * time.Second)
	for !s.pong() {
		select {
		case <-s.proc.Exited():
			s.t.Fatalf("clamd exited at start:\n%s", s.output())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("clamd did not answer PING within 30s:\n%s", s.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *clamdServer) pong() bool {
	c, err := net.DialTimeout("unix", strings.TrimPrefix(s.addr, "unix:"), time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("zPING\x00")); err != nil {
		return false
	}
	reply, _ := bufio.NewReader(c).ReadString(0)
	return reply == "PONG\x00"
}

// stop kills clamd and waits until it has gone; its socket file goes too,
// so that scans find nothing to connect to.
func (s *clamdServer) stop() {
	if s.proc == nil {
		return
	}
	s.proc.Kill()
	s.proc = nil
	os.Remove(strings.TrimPrefix(s.addr, "unix:"))
}

func (s *clamdServer) output() string {
	out, _ := os.ReadFile(filepath.Join(s.dir, "clamd.out"))
	log, _ := os.ReadFile(filepath.Join(s.dir, "clamd.log"))
	return string(out) + string(log)
}
