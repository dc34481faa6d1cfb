package scan

// Tests against a real clamd (Debian package clamav-daemon) with the tiny
// signature database in testdata/clamd, so that no official signatures
// are downloaded:
//   - airlock.ndb: Airlock.Test.EICAR, the EICAR string at the start of a
//     file (ClamAV's own EICAR signature is in the official database);
//   - airlock.hdb: Airlock.Test.Blocked, the MD5 and size of
//     testdata/blocked.txt.
// clamd reports both with ".UNOFFICIAL" appended, as for any signature
// outside the official database. One clamd serves the whole test binary;
// the test that kills clamd starts its own.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/airlock-gw/airlock/internal/testpeer"
)

// The limits of the test clamd: a stream longer than streamMax is refused;
// a file longer than fileMax is not looked at, which AlertExceedsMax turns
// into Heuristics.Limits.Exceeded.MaxFileSize.
const (
	streamMax = 1 << 20
	fileMax   = 768 << 10
)

func TestMain(m *testing.M) {
	code := m.Run()
	shared.srv.stop()
	os.Exit(code)
}

// shared is the clamd the tests share, started by the first that needs it.
var shared struct {
	once sync.Once
	srv  *clamdServer
	err  error
}

// sharedClamd returns the shared clamd, starting it on first use.
func sharedClamd(tb testing.TB) *clamdServer {
	tb.Helper()
	bin := testpeer.Require(tb, "clamd")
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "clamd")
		if err != nil {
			shared.err = err
			return
		}
		shared.srv, shared.err = startClamd(bin, dir)
		if shared.err != nil {
			os.RemoveAll(dir)
			return
		}
		shared.srv.removeDir = true
		tb.Logf("clamd %s answered PING %v after it was started", shared.srv.version, shared.srv.startup.Round(time.Millisecond))
	})
	if shared.err != nil {
		tb.Fatal(shared.err)
	}
	return shared.srv
}

// clamdServer is a clamd process listening on a unix socket and a TCP
// port of 127.0.0.1.
type clamdServer struct {
	unix, tcp string // addresses for NewClamd
	version   string // as clamd reports it
	startup   time.Duration
	dir       string
	removeDir bool // dir is not a t.TempDir: stop removes it
	cmd       *exec.Cmd
	exited    chan struct{}
}

// startClamd starts clamd with its configuration, signatures, sockets and
// logs in dir, and waits until it answers PING.
func startClamd(bin, dir string) (*clamdServer, error) {
	db := filepath.Join(dir, "db")
	if err := os.CopyFS(db, os.DirFS("testdata/clamd")); err != nil {
		return nil, fmt.Errorf("copy signatures: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	sock := filepath.Join(dir, "clamd.sock")
	// Running as root without a clamav user: no User, and every path in
	// dir. No SelfCheck: the database does not change during a test.
	conf := fmt.Sprintf(`Foreground yes
LocalSocket %s
TCPSocket %d
TCPAddr 127.0.0.1
DatabaseDirectory %s
PidFile %s
TemporaryDirectory %s
LogFile %s
LogVerbose yes
StreamMaxLength %d
MaxFileSize %d
AlertExceedsMax yes
SelfCheck 0
`, sock, port, db, filepath.Join(dir, "clamd.pid"), dir, filepath.Join(dir, "clamd.log"), streamMax, fileMax)
	confPath := filepath.Join(dir, "clamd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	out, err := os.Create(filepath.Join(dir, "clamd.out"))
	if err != nil {
		return nil, err
	}
	defer out.Close()
	s := &clamdServer{
		unix:   "unix:" + sock,
		tcp:    fmt.Sprintf("tcp://127.0.0.1:%d", port),
		dir:    dir,
		cmd:    exec.Command(bin, "--config-file="+confPath),
		exited: make(chan struct{}),
	}
	s.cmd.Stdout, s.cmd.Stderr = out, out
	// Killed with the test binary, should it die without cleaning up.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start clamd: %w", err)
	}
	go func() {
		s.cmd.Wait()
		close(s.exited)
	}()
	c, err := NewClamd(s.unix)
	if err != nil {
		s.stop()
		return nil, err
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		select {
		case <-s.exited:
			return nil, fmt.Errorf("clamd exited at start: %s", s.output())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx)
		if err == nil {
			s.version, err = c.command(ctx, "VERSION")
		}
		cancel()
		if err == nil {
			s.startup = time.Since(start)
			return s, nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("clamd did not answer PING within 30s: %v\n%s", err, s.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// output is what clamd printed, for failure messages.
func (s *clamdServer) output() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "clamd.out"))
	return string(b)
}

// kill stops clamd at once and waits until it has exited.
func (s *clamdServer) kill() {
	s.cmd.Process.Kill()
	<-s.exited
}

// stop ends clamd and removes its files unless they are a t.TempDir. It
// does nothing on a nil server, one that never started.
func (s *clamdServer) stop() {
	if s == nil {
		return
	}
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		s.kill()
	}
	if s.removeDir {
		os.RemoveAll(s.dir)
	}
}

// newClamd returns a Clamd for addr.
func newClamd(t testing.TB, addr string) *Clamd {
	t.Helper()
	c, err := NewClamd(addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// randomBytes returns n bytes no signature matches.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)}).Read(b)
	return b
}

func TestClamdScan(t *testing.T) {
	t.Parallel()
	srv := sharedClamd(t)
	blocked, err := os.ReadFile("testdata/blocked.txt")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
		want Result // without Engine
	}{
		{"empty", nil, Result{Verdict: Clean}},
		{"text", []byte("hello, world\n"), Result{Verdict: Clean}},
		{"eicar", []byte(eicar), Result{Verdict: Infected, Signature: "Airlock.Test.EICAR.UNOFFICIAL"}},
		{"eicar with newline", []byte(eicar + "\r\n"), Result{Verdict: Infected, Signature: "Airlock.Test.EICAR.UNOFFICIAL"}},
		{"eicar not at the start", []byte("x" + eicar), Result{Verdict: Clean}},
		{"hash signature", blocked, Result{Verdict: Infected, Signature: "Airlock.Test.Blocked.UNOFFICIAL"}},
		{"hash signature, one byte more", append(bytes.Clone(blocked), '\n'), Result{Verdict: Clean}},
		{"largest file looked at", randomBytes(fileMax), Result{Verdict: Clean}},
		{"larger than MaxFileSize", randomBytes(fileMax + 1), Result{Verdict: TooLarge, Signature: "Heuristics.Limits.Exceeded.MaxFileSize"}},
		{"StreamMaxLength", randomBytes(streamMax), Result{Verdict: TooLarge, Signature: "Heuristics.Limits.Exceeded.MaxFileSize"}},
		{"StreamMaxLength plus one", randomBytes(streamMax + 1), Result{Verdict: TooLarge}},
		{"ten times StreamMaxLength", randomBytes(10 * streamMax), Result{Verdict: TooLarge}},
	}
	for _, addr := range []string{srv.unix, srv.tcp} {
		c := newClamd(t, addr)
		for _, tt := range tests {
			t.Run(addr[:strings.Index(addr, ":")]+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				got, err := c.Scan(t.Context(), bytes.NewReader(tt.data))
				if err != nil {
					t.Fatalf("Scan: %v", err)
				}
				want := tt.want
				want.Engine = "clamd " + srv.version
				if got != want {
					t.Errorf("Scan = %+v, want %+v", got, want)
				}
			})
		}
	}
}

// TestClamdInputError: a stream that cannot be read to the end is an
// error naming the read, not ErrUnavailable (clamd is fine), and no
// verdict, even though clamd would have found the start infected.
func TestClamdInputError(t *testing.T) {
	t.Parallel()
	srv := sharedClamd(t)
	broken := errors.New("landing store unreachable")
	for _, addr := range []string{srv.unix, srv.tcp} {
		c := newClamd(t, addr)
		got, err := c.Scan(t.Context(), io.MultiReader(strings.NewReader(eicar), iotest.ErrReader(broken)))
		if !errors.Is(err, broken) || errors.Is(err, ErrUnavailable) || got != (Result{}) {
			t.Errorf("Scan via %s = %+v, %v; want an error wrapping %v only", addr, got, err, broken)
		}
	}
}

// TestClamdScanAllocates: a scan allocates no more for eleven chunks than
// for one. Not parallel: AllocsPerRun refuses to be. AllocsPerRun counts the
// whole process's allocations, and a goroutine of the runtime or of the
// test's clamd process can add a few now and then, so each size takes the
// least of three counts, and the two may differ by less than the ten that
// one allocation per chunk would add.
func TestClamdScanAllocates(t *testing.T) {
	srv := sharedClamd(t)
	const extraChunks = 10
	for _, addr := range []string{srv.unix, srv.tcp} {
		c := newClamd(t, addr)
		var allocs []float64
		for _, size := range []int{100, extraChunks*chunkSize + 100} {
			data := randomBytes(size)
			least := math.Inf(1)
			for range 3 {
				least = min(least, testing.AllocsPerRun(10, func() {
					if got, err := c.Scan(t.Context(), bytes.NewReader(data)); err != nil || got.Verdict != Clean {
						t.Fatalf("Scan: %v, %v", got, err)
					}
				}))
			}
			allocs = append(allocs, least)
		}
		if allocs[1]-allocs[0] >= extraChunks/2 {
			t.Errorf("via %s: %v allocations for one chunk, %v for %d", addr, allocs[0], allocs[1], 1+extraChunks)
		}
	}
}

// TestClamdTooLargeRepeatedly: clamd refuses an over-long stream while it
// is still being written, and closes the connection; the reply must be
// read whatever state the write was in, on either transport.
func TestClamdTooLargeRepeatedly(t *testing.T) {
	t.Parallel()
	srv := sharedClamd(t)
	data := randomBytes(4 * streamMax)
	for _, addr := range []string{srv.unix, srv.tcp} {
		c := newClamd(t, addr)
		for i := range 20 {
			got, err := c.Scan(t.Context(), bytes.NewReader(data))
			if err != nil || got.Verdict != TooLarge {
				t.Fatalf("%s, scan %d: %v, %v; want %s", addr, i, got, err, TooLarge)
			}
		}
	}
}

// TestClamdConcurrent: one Clamd serves many scans at once.
func TestClamdConcurrent(t *testing.T) {
	t.Parallel()
	srv := sharedClamd(t)
	c := newClamd(t, srv.tcp)
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Go(func() {
			data, want := randomBytes(100<<10+i), Clean
			switch i % 3 {
			case 1:
				data, want = []byte(eicar), Infected
			case 2:
				data, want = randomBytes(2*streamMax), TooLarge
			}
			got, err := c.Scan(t.Context(), bytes.NewReader(data))
			if err != nil || got.Verdict != want {
				t.Errorf("scan %d: %v, %v; want %s", i, got, err, want)
			}
		})
	}
	wg.Wait()
}

func TestClamdPing(t *testing.T) {
	t.Parallel()
	srv := sharedClamd(t)
	for _, addr := range []string{srv.unix, srv.tcp} {
		c := newClamd(t, addr)
		if err := c.Ping(t.Context()); err != nil {
			t.Errorf("Ping %s: %v", addr, err)
		}
		if got, want := c.Describe(), "clamd at "+addr; got != want {
			t.Errorf("Describe = %q, want %q", got, want)
		}
	}
	if !strings.HasPrefix(srv.version, "ClamAV 1.") {
		t.Errorf("VERSION answered %q", srv.version)
	}
}

// interruptingReader serves r and calls interrupt once it has served
// after bytes: the scan is then cut short (cancelled, or clamd killed)
// while streaming.
type interruptingReader struct {
	r         io.Reader
	after     int
	served    int
	interrupt func()
}

func (r *interruptingReader) Read(p []byte) (int, error) {
	if r.served >= r.after && r.interrupt != nil {
		r.interrupt()
		r.interrupt = nil
	}
	n, err := r.r.Read(p)
	r.served += n
	return n, err
}

// TestClamdContext: a done ctx, before or during the scan, ends it with
// ctx's error, never a verdict.
func TestClamdContext(t *testing.T) {
	t.Parallel()
	srv := sharedClamd(t)
	data := randomBytes(fileMax)
	tests := []struct {
		name  string
		after int // bytes served before cancelling; -1 cancels before Scan
		want  error
	}{
		{"cancelled before", -1, context.Canceled},
		{"cancelled while streaming", 3 * chunkSize, context.Canceled},
	}
	for _, addr := range []string{srv.unix, srv.tcp} {
		c := newClamd(t, addr)
		for _, tt := range tests {
			t.Run(addr[:strings.Index(addr, ":")]+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				r := &interruptingReader{r: bytes.NewReader(data), after: tt.after, interrupt: cancel}
				if tt.after < 0 {
					cancel()
				}
				got, err := c.Scan(ctx, r)
				if !errors.Is(err, tt.want) || errors.Is(err, ErrUnavailable) {
					t.Errorf("Scan = %v, %v; want an error wrapping %v", got, err, tt.want)
				}
				if tt.after >= 0 && r.served > tt.after+chunkSize {
					t.Errorf("Scan read %d bytes after it was cancelled", r.served-tt.after)
				}
			})
		}
		t.Run(addr[:strings.Index(addr, ":")]+"/deadline passed", func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
			defer cancel()
			if got, err := c.Scan(ctx, bytes.NewReader(data)); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Scan = %v, %v; want an error wrapping %v", got, err, context.DeadlineExceeded)
			}
		})
	}
}

// TestClamdStopped: clamd dying during a scan, or gone before it, is an
// error wrapping ErrUnavailable, never a verdict; so is Ping then.
func TestClamdStopped(t *testing.T) {
	t.Parallel()
	bin := testpeer.Require(t, "clamd")
	for _, transport := range []string{"unix", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			srv, err := startClamd(bin, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(srv.stop)
			t.Logf("clamd answered PING %v after it was started", srv.startup.Round(time.Millisecond))
			addr := srv.unix
			if transport == "tcp" {
				addr = srv.tcp
			}
			c := newClamd(t, addr)
			data := randomBytes(fileMax)
			if got, err := c.Scan(t.Context(), bytes.NewReader(data)); err != nil || got.Verdict != Clean {
				t.Fatalf("Scan before clamd is killed: %v, %v", got, err)
			}

			r := &interruptingReader{r: bytes.NewReader(data), after: 2 * chunkSize, interrupt: srv.kill}
			got, err := c.Scan(t.Context(), r)
			if !errors.Is(err, ErrUnavailable) || got != (Result{}) {
				t.Errorf("Scan while clamd is killed = %+v, %v; want an error wrapping ErrUnavailable", got, err)
			}

			got, err = c.Scan(t.Context(), bytes.NewReader(data))
			if !errors.Is(err, ErrUnavailable) || got != (Result{}) {
				t.Errorf("Scan after clamd is killed = %+v, %v; want an error wrapping ErrUnavailable", got, err)
			}
			if err := c.Ping(t.Context()); !errors.Is(err, ErrUnavailable) {
				t.Errorf("Ping after clamd is killed: %v, want an error wrapping ErrUnavailable", err)
			}
		})
	}
}

func BenchmarkClamdScan(b *testing.B) {
	srv := sharedClamd(b)
	data := randomBytes(fileMax)
	for _, addr := range []string{srv.unix, srv.tcp} {
		b.Run(addr[:strings.Index(addr, ":")], func(b *testing.B) {
			c := newClamd(b, addr)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				got, err := c.Scan(b.Context(), bytes.NewReader(data))
				if err != nil || got.Verdict != Clean {
					b.Fatalf("Scan: %v, %v", got, err)
				}
			}
		})
	}
}
