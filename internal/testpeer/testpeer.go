// Package testpeer finds and runs the real programs airlock's tests talk
// to (versitygw, clamd, the OpenSSH client, rclone…) on 127.0.0.1. It is
// imported only by tests.
//
// scripts/install-peers.sh (make peers) installs every peer. A test whose
// peer is missing is skipped, unless CI=true (set by .ci/run): then it
// fails, so that a missing peer never passes silently in CI.
package testpeer

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Require returns the path of the program name, looked up in PATH, then
// in /usr/sbin (clamd is there, and a non-root PATH may lack it), then in
// $(go env GOPATH)/bin (versitygw). When it is in none of them, Require
// skips the test, or fails it when CI=true.
func Require(tb testing.TB, name string) string {
	tb.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := filepath.Join("/usr/sbin", name); isExecutable(p) {
		return p
	}
	if gopath, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		if p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", name); isExecutable(p) {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		tb.Fatalf("%s is required but not installed (make peers installs it)", name)
	}
	tb.Skipf("%s not installed; run make peers (with CI=true this fails)", name)
	return ""
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// FreeAddr returns a TCP address of 127.0.0.1 that nothing listens on
// (at the moment it returns), for a peer to listen on.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// WaitTCP waits (up to 20s) until something accepts connections on addr.
// It fails the test at once if exited, the channel of the process meant to
// listen there, is closed first.
func WaitTCP(tb testing.TB, addr string, exited <-chan struct{}) {
	tb.Helper()
	if err := Listening(addr, exited); err != nil {
		tb.Fatal(err)
	}
}

// ErrExited is what Listening returns when the process exited first.
var ErrExited = errors.New("exited early")

// Listening waits up to 20 s for something to accept connections on addr,
// unless exited closes first (ErrExited).
func Listening(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("process serving %s %w", addr, ErrExited)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			_ = c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on %s", addr)
}

// Process is a program a test started.
type Process struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// Start starts cmd, failing the test if it cannot, and reaps it when it
// exits. Ending it (Kill, Stop) is up to the caller.
func Start(tb testing.TB, cmd *exec.Cmd) *Process {
	tb.Helper()
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", filepath.Base(cmd.Path), err)
	}
	p := &Process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.exited)
	}()
	return p
}

// Exited is closed once the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Pid is the process's id, to read or set its limits and usage.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill ends the process with SIGKILL, so that no cleanup of its own runs,
// and waits until it has gone.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// Stop asks the process to end with SIGTERM, kills it if it has not ended
// after grace, and waits until it has gone.
func (p *Process) Stop(grace time.Duration) {
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		p.Kill()
	}
}
