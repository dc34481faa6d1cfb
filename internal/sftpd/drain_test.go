package sftpd

import (
	"bytes"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/airlock-gw/airlock/internal/ledger"
)

// TestDrain: once Serve's context ends, readiness fails and new
// connections are refused at once; an upload under way may finish within
// the drain timeout; one still open at its end is closed and interrupted,
// kept to resume; Serve returns after both are settled.
func TestDrain(t *testing.T) {
	t.Parallel()
	const drainTimeout = 2 * time.Second
	ts := newTestServer(t, serverOptions{drainTimeout: drainTimeout, resumeWindow: time.Hour})
	data := bytes.Repeat([]byte("drain me "), 10<<10)
	half := len(data) / 2
	finishingConn, finishing := ts.openUpload(t, "/finishing.bin", data[:half])
	_, cut := ts.openUpload(t, "/cut.bin", data[:half])
	if err := ts.srv.Ping(t.Context()); err != nil {
		t.Fatalf("ready before the stop: %v", err)
	}

	start := time.Now()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		ts.stop(t)
	}()
	eventually(t, "readiness to fail", func() bool { return errors.Is(ts.srv.Ping(t.Context()), errDraining) })
	if c, err := net.Dial("tcp", ts.addr); !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("a new connection while draining: %v, want it refused", err)
	}
	if _, err := finishing.Write(data[half:]); err != nil {
		t.Fatalf("write while draining: %v", err)
	}
	if err := finishing.Close(); err != nil {
		t.Fatalf("close while draining: %v", err)
	}
	finishingConn.Close()
	select {
	case <-stopped:
		t.Fatal("Serve returned with a session open")
	case <-time.After(drainTimeout / 4):
	}
	<-stopped
	if took := time.Since(start); took < drainTimeout || took > drainTimeout+10*time.Second {
		t.Errorf("the drain took %s, want about %s", took, drainTimeout)
	}
	if _, err := cut.Write(data[half:]); err == nil {
		t.Error("the session left at the drain timeout is still open")
	}

	states := map[string]ledger.Transfer{}
	for _, tr := range ts.transfers(t, uploader) {
		states[tr.Path] = tr
	}
	if tr := states["/finishing.bin"]; tr.State != ledger.Received || tr.Size != int64(len(data)) {
		t.Errorf("the upload finished while draining is %s at %d bytes, want received", tr.State, tr.Size)
	}
	if tr := states["/cut.bin"]; tr.State != ledger.Interrupted || tr.Size != int64(half) || tr.Error != errDrained.Error() {
		t.Errorf("the upload cut by the drain is %s at %d bytes (%q), want interrupted at %d", tr.State, tr.Size, tr.Error, half)
	}
	if got := testutil.ToFloat64(ts.metrics.drainClosed); got != 1 {
		t.Errorf("airlock_sftp_drain_closed_total = %v, want 1", got)
	}
	if evs := ts.events(t, "sftp.drain"); len(evs) != 1 || evs[0].Detail["sessions"] != "2" || evs[0].Detail["closed"] != "1" {
		t.Errorf("sftp.drain events %+v, want one of 2 sessions, 1 closed", evs)
	}
}
