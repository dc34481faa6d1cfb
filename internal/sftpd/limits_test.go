package sftpd

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/crypto/ssh"

	"github.com/airlock-gw/airlock/internal/sftptest"
)

func TestHandleLimitsCount(t *testing.T) {
	t.Parallel()
	// Two handles a session, three a supplier, four on the node.
	type take struct {
		supplier string
		session  int // index into the sessions
		want     string
	}
	tests := []struct {
		name  string
		takes []take
	}{
		{"session", []take{{"a", 0, ""}, {"a", 0, ""}, {"a", 0, limitSession}}},
		{"supplier", []take{{"a", 0, ""}, {"a", 0, ""}, {"a", 1, ""}, {"a", 1, limitSupplier}, {"a", 2, limitSupplier}}},
		{"node", []take{{"a", 0, ""}, {"a", 0, ""}, {"b", 1, ""}, {"b", 1, ""}, {"c", 2, limitNode}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHandleLimits(2, 3, 4)
			sessions := make([]int, 3)
			var taken []take
			for i, tk := range tt.takes {
				limit, ok := h.take(tk.supplier, &sessions[tk.session])
				if limit != tk.want || ok != (tk.want == "") {
					t.Fatalf("take %d: limit %q (ok %v), want %q", i, limit, ok, tk.want)
				}
				if ok {
					taken = append(taken, tk)
				}
			}
			for _, tk := range taken {
				h.give(tk.supplier, &sessions[tk.session])
			}
			if h.open() != 0 || len(h.suppliers) != 0 || sessions[0]+sessions[1]+sessions[2] != 0 {
				t.Errorf("after every handle was given back: node %d, suppliers %v, sessions %v", h.open(), h.suppliers, sessions)
			}
		})
	}
}

// TestHandleLimitRefusals: files and directories count alike; beyond a
// limit an open gets a clear status, and the session one audit event
// however many refusals.
func TestHandleLimitRefusals(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{maxHandlesPerSession: 3, maxHandlesPerSupplier: 5})
	open := func(c *sftptest.Client, typ byte) (handle string, code uint32, msg string) {
		t.Helper()
		var fields []any
		if typ == sftptest.FXPOpen {
			fields = []any{"/download/report.csv", uint32(sftptest.FXFRead), uint32(0)}
		} else {
			fields = []any{"/download/sub"}
		}
		rtyp, body := c.Call(typ, fields...)
		if rtyp == sftptest.FXPHandle {
			handle, _ = c.String(body)
			return handle, sftptest.FXOK, ""
		}
		code, msg = c.StatusOf(body)
		return "", code, msg
	}
	first := ts.rawClient(t, egresser)
	var held []string
	for i, typ := range []byte{sftptest.FXPOpen, sftptest.FXPOpendir, sftptest.FXPOpen} {
		h, code, msg := open(first, typ)
		if code != sftptest.FXOK {
			t.Fatalf("open %d: status %d %q", i, code, msg)
		}
		held = append(held, h)
	}
	for range 10 {
		if _, code, msg := open(first, sftptest.FXPOpendir); code != sftptest.FXFailure || !strings.Contains(msg, "too many open handles: this session has 3 open") {
			t.Fatalf("fourth handle of a session: status %d %q", code, msg)
		}
	}
	if code, msg := first.Status(sftptest.FXPClose, held[1]); code != sftptest.FXOK {
		t.Fatalf("close: %d %q", code, msg)
	}
	if _, code, msg := open(first, sftptest.FXPOpen); code != sftptest.FXOK {
		t.Fatalf("open after a close: status %d %q", code, msg)
	}

	second := ts.rawClient(t, egresser)
	for i := range 2 {
		if _, code, msg := open(second, sftptest.FXPOpen); code != sftptest.FXOK {
			t.Fatalf("second session's open %d: status %d %q", i, code, msg)
		}
	}
	if _, code, msg := open(second, sftptest.FXPOpen); code != sftptest.FXFailure || !strings.Contains(msg, "your sessions have 5 open") {
		t.Fatalf("sixth handle of a supplier: status %d %q", code, msg)
	}
	// Another supplier is not affected.
	if code, msg := ts.rawClient(t, uploader).OpenWrite("/fine.csv"); code != sftptest.FXOK {
		t.Fatalf("another supplier's upload: %d %q", code, msg)
	}

	if got := testutil.ToFloat64(ts.metrics.limitRefusals.WithLabelValues("handles_per_session")); got != 10 {
		t.Errorf("handles_per_session refusals %v, want 10", got)
	}
	if evs := ts.events(t, "limit.reached"); len(evs) != 2 {
		t.Errorf("%d limit.reached events, want one a connection and limit (each session here has its own): %v", len(evs), evs)
	}
	if n := ts.refusals(t, "too-many-handles"); n != 0 {
		t.Errorf("%d request.refused events for the limit, want none", n)
	}
	ts.stop(t)
	if n := ts.srv.handles.open(); n != 0 {
		t.Errorf("%d handles counted open after every session ended", n)
	}
}

func TestChannelLimit(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{maxChannels: 2})
	conn := ts.connect(t, uploader)
	var open []*ssh.Session
	for range 2 {
		s, err := conn.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, s)
	}
	for range 5 {
		_, err := conn.NewSession()
		var oce *ssh.OpenChannelError
		if !errors.As(err, &oce) || oce.Reason != ssh.ResourceShortage || !strings.Contains(oce.Message, "too many channels") {
			t.Fatalf("third channel: %v, want a resource shortage", err)
		}
	}
	open[0].Close()
	eventually(t, "a closed channel's place to be free", func() bool {
		s, err := conn.NewSession()
		if err == nil {
			s.Close()
		}
		return err == nil
	})
	if got := testutil.ToFloat64(ts.metrics.limitRefusals.WithLabelValues("channels_per_connection")); got < 5 {
		t.Errorf("channels_per_connection refusals %v, want at least 5", got)
	}
	if evs := ts.events(t, "limit.reached"); len(evs) != 1 {
		t.Errorf("%d limit.reached events, want one for the connection", len(evs))
	}
}

func TestDirListerPages(t *testing.T) {
	t.Parallel()
	names := func(from, to int) []os.FileInfo {
		var out []os.FileInfo
		for i := from; i < to; i++ {
			out = append(out, dirInfo(fmt.Sprintf("%04d", i), time.Time{}))
		}
		return out
	}
	listing := names(0, 250)
	calls := 0
	l := &dirLister{list: func() ([]os.FileInfo, error) { calls++; return listing, nil }, release: func() {}}
	if err := l.load(0); err != nil {
		t.Fatal(err)
	}
	var got []string
	dst := make([]os.FileInfo, 100)
	for off := int64(0); ; {
		n, err := l.ListAt(dst, off)
		for _, fi := range dst[:n] {
			got = append(got, fi.Name())
		}
		off += int64(n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if l.page != nil {
			t.Fatalf("a served page is still held: %d entries", len(l.page))
		}
		if off == 100 {
			// Entries added before the cursor are not served again.
			listing = append(names(0, 250), dirInfo("0000a", time.Time{}))
			sortInfos(listing)
		}
	}
	if len(got) != 250 || got[0] != "0000" || got[249] != "0249" {
		t.Errorf("listed %d entries (%v…), want 0000 to 0249 once each", len(got), got[:min(3, len(got))])
	}
	if calls != 3 {
		t.Errorf("the listing was read %d times for three pages, want 3", calls)
	}
	// A client starting over gets the listing from the start.
	if n, err := l.ListAt(dst, 0); n != 100 || err != nil || dst[0].Name() != "0000" {
		t.Errorf("ListAt(0) again: %d entries from %q, %v", n, dst[0].Name(), err)
	}
}

// flakyListener fails its first accepts as a process out of descriptors
// does.
type flakyListener struct {
	net.Listener
	fails atomic.Int32
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

func TestAcceptErrorsBackOff(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{listener: func(ln net.Listener) net.Listener {
		fl := &flakyListener{Listener: ln}
		fl.fails.Store(5)
		return fl
	}})
	start := time.Now()
	if code, msg := ts.rawClient(t, uploader).OpenWrite("/after.csv"); code != sftptest.FXOK {
		t.Fatalf("upload after failed accepts: %d %q", code, msg)
	}
	if got := testutil.ToFloat64(ts.metrics.acceptErrors); got != 5 {
		t.Errorf("accept errors %v, want 5", got)
	}
	// 5+10+20+40+80 ms of backoff.
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Errorf("served after %v: the failed accepts were not backed off", took)
	}
}

func TestAcceptBackoffDoubles(t *testing.T) {
	t.Parallel()
	var b acceptBackoff
	var got []time.Duration
	for range 10 {
		got = append(got, b.next())
	}
	if got[0] != 5*time.Millisecond || got[1] != 10*time.Millisecond || got[9] != time.Second {
		t.Errorf("backoff %v, want 5ms doubling to 1s", got)
	}
	b.reset()
	if d := b.next(); d != 5*time.Millisecond {
		t.Errorf("after reset: %v", d)
	}
}

// TestWriteStall: a client that asks for data and stops reading has its
// connection closed after the write stall timeout.
func TestWriteStall(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{writeStall: time.Second})
	writeFile(t, filepath.Join(ts.egressDir, "big.bin"), strings.Repeat("x", 4<<20))
	conn := ts.connect(t, egresser)
	c := sftptest.New(t, conn)
	rtyp, body := c.Call(sftptest.FXPOpen, "/download/big.bin", uint32(sftptest.FXFRead), uint32(0))
	if rtyp != sftptest.FXPHandle {
		t.Fatalf("open: type %d", rtyp)
	}
	h, _ := c.String(body)
	for i := range 16 { // 4 MiB asked for; the client's window takes 2
		c.Send(sftptest.FXPRead, h, uint64(i)*(256<<10), uint32(256<<10))
	}
	closed := make(chan error, 1)
	go func() { closed <- conn.Wait() }()
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("the stalled connection is still open after 20s")
	}
	if got := testutil.ToFloat64(ts.metrics.limitRefusals.WithLabelValues("write_stall_timeout")); got != 1 {
		t.Errorf("write_stall_timeout metric %v, want 1", got)
	}
	if evs := ts.events(t, "limit.reached"); len(evs) != 1 || evs[0].Detail["limit"] != "write_stall_timeout" {
		t.Errorf("limit.reached events %v, want one of write_stall_timeout", evs)
	}
}

// TestListingAcrossPages: a listing longer than a page arrives whole, once
// each, through pkg/sftp's client, in both areas.
func TestListingAcrossPages(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	const n = 2*listPage + 17
	for i := range n {
		writeFile(t, filepath.Join(ts.egressDir, "many", fmt.Sprintf("f%03d.csv", i)), "1\n")
	}
	c := ts.sftpClient(t, egresser)
	for i := range n {
		if err := putFile(c, fmt.Sprintf("/upload/u%03d.csv", i), []byte("1\n")); err != nil {
			t.Fatal(err)
		}
	}
	for dir, prefix := range map[string]string{"/download/many": "f", "/upload": "u"} {
		infos, err := c.ReadDir(dir)
		if err != nil {
			t.Fatalf("list %s: %v", dir, err)
		}
		seen := make(map[string]bool)
		for _, fi := range infos {
			if seen[fi.Name()] {
				t.Errorf("%s: %s listed twice", dir, fi.Name())
			}
			seen[fi.Name()] = true
		}
		for i := range n {
			if name := fmt.Sprintf("%s%03d.csv", prefix, i); !seen[name] {
				t.Errorf("%s: %s missing from the listing of %d entries", dir, name, len(infos))
			}
		}
	}
}
