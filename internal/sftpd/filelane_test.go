package sftpd

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/sftptest"
)

// statusCase is a request and the status it must be answered with.
type statusCase struct {
	name     string
	typ      byte
	fields   []any
	wantCode uint32
	wantMsg  string // part of the message
}

// checkStatuses sends each request in turn on c.
func checkStatuses(t *testing.T, c *sftptest.Client, cases []statusCase) {
	t.Helper()
	for _, tt := range cases { // one session: in order, not in parallel
		code, msg := c.Status(tt.typ, tt.fields...)
		if code != tt.wantCode || !strings.Contains(msg, tt.wantMsg) {
			t.Errorf("%s: status %d %q, want %d with %q", tt.name, code, msg, tt.wantCode, tt.wantMsg)
		}
	}
}

// openUpload opens p for writing and returns the handle.
func openUpload(t *testing.T, c *sftptest.Client, p string) string {
	t.Helper()
	typ, body := c.Call(sftptest.FXPOpen, p, uint32(sftptest.FXFWrite|sftptest.FXFCreat|sftptest.FXFTrunc), uint32(0))
	if typ != sftptest.FXPHandle {
		code, msg := c.StatusOf(body)
		t.Fatalf("open %s: status %d %q, want a handle", p, code, msg)
	}
	handle, _ := c.String(body)
	return handle
}

// TestFileLanePipelinedWrites: writes sent without waiting, some ahead of
// the stream, are each answered in the order sent and land in order.
func TestFileLanePipelinedWrites(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	c := ts.rawClient(t, uploader)
	handle := openUpload(t, c, "/piped.bin")
	data := source(5*32<<10 + 100)
	chunk := func(i int) (uint64, string) {
		off := i * 32 << 10
		return uint64(off), string(data[off:min(off+32<<10, len(data))])
	}
	var ids []uint32
	for _, i := range []int{1, 0, 3, 2, 5, 4} { // as concurrent writers may send them
		off, b := chunk(i)
		ids = append(ids, c.Send(sftptest.FXPWrite, handle, off, b))
	}
	for _, want := range ids {
		typ, id, body := c.Recv()
		if typ != sftptest.FXPStatus || id != want {
			t.Fatalf("answer type %d to request %d, want a status to request %d", typ, id, want)
		}
		if code, msg := c.StatusOf(body); code != sftptest.FXOK {
			t.Fatalf("write %d: status %d %q", id, code, msg)
		}
	}
	if code, msg := c.Status(sftptest.FXPClose, handle); code != sftptest.FXOK {
		t.Fatalf("close: status %d %q", code, msg)
	}
	ts.checkReceived(t, ts.onlyTransfer(t, uploader), data)
}

// TestFileLaneHandleRequests: the requests a client may send on an open
// upload, each answered as the session's handlers decide.
func TestFileLaneHandleRequests(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	c := ts.rawClient(t, uploader)
	handle := openUpload(t, c, "/f.csv")
	if code, msg := c.Status(sftptest.FXPWrite, handle, uint64(0), "a,b\n"); code != sftptest.FXOK {
		t.Fatalf("write: status %d %q", code, msg)
	}

	typ, body := c.Call(sftptest.FXPFstat, handle)
	if typ != sftptest.FXPAttrs {
		t.Fatalf("fstat answered with type %d, want ATTRS", typ)
	}
	if flags := binary.BigEndian.Uint32(body); flags&(attrSize|attrPermissions) != attrSize|attrPermissions {
		t.Errorf("fstat attribute flags %#x lack size and permissions", flags)
	}
	if mode := binary.BigEndian.Uint32(body[12:]); mode&0o170000 != modeRegular {
		t.Errorf("fstat mode %o is not a regular file", mode)
	}

	checkStatuses(t, c, []statusCase{
		{"setstat of times", sftptest.FXPFsetstat, []any{handle, uint32(attrTimes), uint32(1), uint32(2)}, sftptest.FXOK, ""},
		{"setstat of the size", sftptest.FXPFsetstat, []any{handle, uint32(attrSize), uint64(0)}, sftptest.FXOpUnsupported, "size"},
		{"read", sftptest.FXPRead, []any{handle, uint64(0), uint32(10)}, sftptest.FXPermissionDenied, "write-only"},
		{"write cut short", sftptest.FXPWrite, []any{handle, uint64(4)}, sftptest.FXBadMessage, "malformed"},
	})

	if code, msg := c.Status(sftptest.FXPClose, handle); code != sftptest.FXOK {
		t.Fatalf("close: status %d %q", code, msg)
	}
	ts.checkReceived(t, ts.onlyTransfer(t, uploader), []byte("a,b\n"))
	if code, _ := c.Status(sftptest.FXPWrite, handle, uint64(4), "more"); code == sftptest.FXOK {
		t.Error("a write on a closed handle succeeded")
	}
}

// TestFileLaneWaitsForEarlierRequests: an upload opened right behind a
// request pkg/sftp serves sees that request done, and the answers keep
// the order of the requests.
func TestFileLaneWaitsForEarlierRequests(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	c := ts.rawClient(t, uploader)
	for i := range 20 {
		dir := "/d" + string(rune('a'+i))
		mkdir := c.Send(sftptest.FXPMkdir, dir, uint32(0))
		open := c.Send(sftptest.FXPOpen, dir+"/f.bin", uint32(sftptest.FXFWrite|sftptest.FXFCreat), uint32(0))
		typ, id, body := c.Recv()
		if typ != sftptest.FXPStatus || id != mkdir {
			t.Fatalf("first answer: type %d to request %d, want the status of mkdir (%d)", typ, id, mkdir)
		}
		if code, msg := c.StatusOf(body); code != sftptest.FXOK {
			t.Fatalf("mkdir %s: status %d %q", dir, code, msg)
		}
		typ, id, body = c.Recv()
		if typ != sftptest.FXPHandle || id != open {
			code, msg := c.StatusOf(body)
			t.Fatalf("open in %s: type %d to request %d (%d %q), want a handle to request %d", dir, typ, id, code, msg, open)
		}
		handle, _ := c.String(body)
		if code, msg := c.Status(sftptest.FXPClose, handle); code != sftptest.FXOK {
			t.Fatalf("close: status %d %q", code, msg)
		}
	}
}

// TestFileLaneRefusesLikeTheHandlers: an open the session refuses is
// answered with the handlers' status and message.
func TestFileLaneRefusesLikeTheHandlers(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	c := ts.rawClient(t, uploader)
	open := func(p string, flags uint32) []any { return []any{p, flags, uint32(0)} }
	ts.seed(t, uploader, "/x.csv", ledger.Received)
	checkStatuses(t, c, []statusCase{
		{"escape", sftptest.FXPOpen, open("../x.csv", sftptest.FXFWrite|sftptest.FXFCreat), sftptest.FXPermissionDenied, "leaves the home directory"},
		{"missing directory", sftptest.FXPOpen, open("/no/x.csv", sftptest.FXFWrite), sftptest.FXNoSuchFile, `"/no"`},
		{"append", sftptest.FXPOpen, open("/x.csv", sftptest.FXFWrite|0x04), sftptest.FXOpUnsupported, "append"},
		{"read and write", sftptest.FXPOpen, open("/", sftptest.FXFRead|sftptest.FXFWrite), sftptest.FXFailure, "is a directory"},
	})
	if got := ts.refusals(t, "escape"); got != 1 {
		t.Errorf("%d escape refusals recorded, want 1", got)
	}
	ts.assertNothingLanded(t)
}

// TestFileLaneDownload: the requests a client may send on an open
// download.
func TestFileLaneDownload(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	c := ts.rawClient(t, egresser)
	want := egressFiles["report.csv"]
	typ, body := c.Call(sftptest.FXPOpen, "/download/report.csv", uint32(sftptest.FXFRead), uint32(0))
	if typ != sftptest.FXPHandle {
		code, msg := c.StatusOf(body)
		t.Fatalf("open: status %d %q, want a handle", code, msg)
	}
	handle, _ := c.String(body)

	typ, body = c.Call(sftptest.FXPFstat, handle)
	if typ != sftptest.FXPAttrs || binary.BigEndian.Uint64(body[4:]) != uint64(len(want)) {
		t.Errorf("fstat: type %d, body %x; want ATTRS with size %d", typ, body, len(want))
	}
	typ, body = c.Call(sftptest.FXPRead, handle, uint64(3), uint32(1<<20))
	if got, _ := c.String(body); typ != sftptest.FXPData || got != want[3:] {
		t.Errorf("read from byte 3: type %d, data %q; want DATA %q", typ, got, want[3:])
	}

	checkStatuses(t, c, []statusCase{
		{"read at the end", sftptest.FXPRead, []any{handle, uint64(len(want)), uint32(10)}, sftptest.FXEOF, ""},
		{"read cut short", sftptest.FXPRead, []any{handle, uint64(0)}, sftptest.FXBadMessage, "malformed"},
		{"write", sftptest.FXPWrite, []any{handle, uint64(0), "x"}, sftptest.FXPermissionDenied, "read-only"},
		{"setstat", sftptest.FXPFsetstat, []any{handle, uint32(attrTimes), uint32(1), uint32(2)}, sftptest.FXPermissionDenied, "read-only"},
		{"close", sftptest.FXPClose, []any{handle}, sftptest.FXOK, ""},
	})
}

// TestFileLaneLimits: the version announces limits@openssh.com, the lane
// answers it, and keeps to what it said: a write of the most data a request
// may carry lands whole, and a read of more is answered with that much.
func TestFileLaneLimits(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	data := source(maxData + 100)
	writeFile(t, filepath.Join(ts.egressDir, "big.bin"), string(data))
	c := ts.rawClient(t, egresser)
	if got, ok := c.Extensions[limitsExtension]; !ok || got != "1" {
		t.Fatalf("extensions %v, want %s revision 1", c.Extensions, limitsExtension)
	}

	typ, body := c.Call(sftptest.FXPExtended, limitsExtension)
	if typ != sftptest.FXPExtendedReply || len(body) != 4*8 {
		t.Fatalf("limits: answer of type %d with %d bytes, want an extended reply of four integers", typ, len(body))
	}
	for i, want := range []uint64{maxPacketLength, maxData, maxData, maxOpenHandles} {
		if got := binary.BigEndian.Uint64(body[8*i:]); got != want {
			t.Errorf("limit %d is %d, want %d", i, got, want)
		}
	}

	handle := openUpload(t, c, "/upload/whole.bin")
	if code, msg := c.Status(sftptest.FXPWrite, handle, uint64(0), string(data[:maxData])); code != sftptest.FXOK {
		t.Fatalf("write of %d bytes: status %d %q", maxData, code, msg)
	}
	if code, msg := c.Status(sftptest.FXPClose, handle); code != sftptest.FXOK {
		t.Fatalf("close: status %d %q", code, msg)
	}
	ts.checkReceived(t, ts.onlyTransfer(t, egresser), data[:maxData])

	typ, body = c.Call(sftptest.FXPOpen, "/download/big.bin", uint32(sftptest.FXFRead), uint32(0))
	if typ != sftptest.FXPHandle {
		code, msg := c.StatusOf(body)
		t.Fatalf("open for reading: status %d %q, want a handle", code, msg)
	}
	handle, _ = c.String(body)
	typ, body = c.Call(sftptest.FXPRead, handle, uint64(0), uint32(1<<20))
	if got, _ := c.String(body); typ != sftptest.FXPData || got != string(data[:maxData]) {
		t.Errorf("read of 1 MiB: type %d with %d bytes, want DATA of the first %d bytes", typ, len(got), maxData)
	}
}

// FuzzFileLane: every request the lane takes is answered exactly once,
// with its id, whatever its bytes. An upload is open as "f1" and a
// download as "f2".
func FuzzFileLane(f *testing.F) {
	f.Add(byte(fxpWrite), sftptest.Packet(fxpWrite, 7, "f1", uint64(0), "data")[9:])
	f.Add(byte(fxpWrite), sftptest.Packet(fxpWrite, 7, "f1", uint64(1<<40), "data")[9:])
	f.Add(byte(fxpFsetstat), sftptest.Packet(fxpFsetstat, 7, "f1", uint32(attrSize))[9:])
	f.Add(byte(fxpFstat), sftptest.Packet(fxpFstat, 7, "f1")[9:])
	f.Add(byte(fxpRead), sftptest.Packet(fxpRead, 7, "f1", uint64(0), uint32(5))[9:])
	f.Add(byte(fxpRead), sftptest.Packet(fxpRead, 7, "f2", uint64(2), uint32(1<<31))[9:])
	f.Add(byte(fxpWrite), sftptest.Packet(fxpWrite, 7, "f2", uint64(0), "data")[9:])
	f.Add(byte(fxpOpen), sftptest.Packet(fxpOpen, 7, "/upload/x", uint32(fxfWrite), uint32(0))[9:])
	f.Add(byte(fxpOpen), sftptest.Packet(fxpOpen, 7, "/download/report.csv", uint32(fxfRead), uint32(0))[9:])
	f.Add(byte(fxpClose), sftptest.Packet(fxpClose, 7, "f2")[9:])
	f.Add(byte(fxpWrite), []byte{0, 0, 0, 2, 'f'})
	f.Add(byte(fxpInit), []byte{})
	f.Add(byte(fxpExtended), sftptest.Packet(fxpExtended, 7, limitsExtension)[9:])

	ts := newTestServer(f, serverOptions{})
	ch := &recordingChannel{}
	replies := newReplyPacker(ch)
	supplier, ok := ts.srv.suppliers().Lookup(egresser)
	if !ok {
		f.Fatal("no test supplier")
	}
	sess := &session{
		srv: ts.srv, ctx: f.Context(), supplier: supplier, connID: "fuzz", remoteIP: "127.0.0.1",
		log: testLogger(f), held: make(map[string]ledger.Transfer), live: &liveConn{},
	}
	sess.refusals = newRefusals(ts.srv, sess.log, egresser, sess.remoteIP, sess.connID)
	lane := newFileLane(sess, replies)
	lane.started = true // each input is one request of a session past INIT
	f.Cleanup(func() { lane.abort(nil) })
	// keepOpen opens p as handle unless a file is open there.
	keepOpen := func(t *testing.T, handle, p string, pflags uint32) {
		if _, ok := lane.files[handle]; ok {
			return
		}
		replies.requests.Add(1)
		lane.serve(sftptest.Packet(fxpOpen, 1, p, pflags, uint32(0)))
		latest := handlePrefix + strconv.FormatUint(lane.opened, 10)
		file, ok := lane.files[latest]
		if !ok {
			t.Fatalf("open %s failed", p)
		}
		delete(lane.files, latest)
		file.handle = handle
		lane.files[handle] = file
	}
	f.Fuzz(func(t *testing.T, typ byte, body []byte) {
		keepOpen(t, "f1", "/upload/open.bin", fxfWrite)
		keepOpen(t, "f2", "/download/report.csv", fxfRead)
		ch.mu.Lock()
		ch.writes = nil
		ch.mu.Unlock()
		pkt := append(binary.BigEndian.AppendUint32(nil, uint32(5+len(body))), typ, 0, 0, 0, 7)
		pkt = append(pkt, body...)
		before := replies.replies
		replies.requests.Add(1)
		served, err := lane.serve(pkt)
		if err != nil || !served {
			replies.requests.Add(-1) // pkg/sftp's, which answers it, or the end of the session
			return
		}
		replies.flushHeld()
		if got := replies.replies - before; got != 1 {
			t.Fatalf("request of type %d answered %d times", typ, got)
		}
		_, sent := ch.sent()
		last := lastReply(sent)
		want := uint32(7)
		if typ == fxpInit {
			want = sftpVersion // where other answers carry the id
		}
		if len(last) < 9 || binary.BigEndian.Uint32(last[5:]) != want {
			t.Fatalf("the answer %x does not carry %d", last, want)
		}
	})
}

// lastReply returns the last whole reply of a stream of replies.
func lastReply(stream []byte) []byte {
	var last []byte
	for len(stream) >= 4 {
		n := 4 + int(binary.BigEndian.Uint32(stream))
		if n > len(stream) {
			break
		}
		last, stream = stream[:n], stream[n:]
	}
	return bytes.Clone(last)
}
