package sftpd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"

	"github.com/airlock-gw/airlock/internal/sftptest"
)

func TestEscapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p    string
		want bool
	}{
		{"", false},
		{"/", false},
		{".", false},
		{"x", false},
		{"/x", false},
		{"/a/b/c", false},
		{"/a/../b", false},
		{"a/..", false},
		{"/a/b/../..", false},
		{"/a/b/c/../../../x", false},
		{"/./x", false},
		{"...", false},
		{"/..x", false},
		{"/x..", false},
		{"//a//..//b", false},
		{"..", true},
		{"../x", true},
		{"/..", true},
		{"/../x", true},
		{"./..", true},
		{"//../x", true},
		{"../../etc/passwd", true},
		{"/a/../../x", true},
		{"/a/b/../../..", true},
		{"/a/../b/../../c/d", true},
		{"a/../../a", true},
		{"/../a/b/c/d", true}, // climbing out first counts, even if it comes back deeper
	}
	for _, tt := range tests {
		if got := escapes(tt.p); got != tt.want {
			t.Errorf("escapes(%q) = %v, want %v", tt.p, got, tt.want)
		}
	}
}

func TestRewriteEscapes(t *testing.T) {
	t.Parallel()
	const m = escapeMarker
	const (
		openFlags = uint32(0x1a) // WRITE|CREAT|TRUNC
		noAttrs   = uint32(0)
		permAttrs = uint32(4) // SSH_FILEXFER_ATTR_PERMISSIONS
		perm      = uint32(0o644)
	)
	tests := []struct {
		name string
		in   []byte
		want []byte // nil: returned unchanged
	}{
		{"OPEN escaping", sftptest.Packet(fxpOpen, 7, "../x", openFlags, noAttrs), sftptest.Packet(fxpOpen, 7, m, openFlags, noAttrs)},
		{"OPEN absolute escaping", sftptest.Packet(fxpOpen, 7, "/../../etc/passwd", openFlags, noAttrs), sftptest.Packet(fxpOpen, 7, m, openFlags, noAttrs)},
		{"OPEN inside", sftptest.Packet(fxpOpen, 7, "/a/../b", openFlags, noAttrs), nil},
		{"OPEN plain", sftptest.Packet(fxpOpen, 7, "/data.csv", openFlags, noAttrs), nil},
		{"STAT escaping", sftptest.Packet(fxpStat, 1, "/../x"), sftptest.Packet(fxpStat, 1, m)},
		{"STAT root", sftptest.Packet(fxpStat, 1, "/"), nil},
		{"LSTAT escaping", sftptest.Packet(fxpLstat, 2, ".."), sftptest.Packet(fxpLstat, 2, m)},
		{"OPENDIR escaping", sftptest.Packet(fxpOpendir, 3, "./.."), sftptest.Packet(fxpOpendir, 3, m)},
		{"SETSTAT keeps attrs", sftptest.Packet(fxpSetstat, 4, "../x", permAttrs, perm), sftptest.Packet(fxpSetstat, 4, m, permAttrs, perm)},
		{"REMOVE escaping", sftptest.Packet(fxpRemove, 5, "../x"), sftptest.Packet(fxpRemove, 5, m)},
		{"MKDIR keeps attrs", sftptest.Packet(fxpMkdir, 6, "../d", permAttrs, perm), sftptest.Packet(fxpMkdir, 6, m, permAttrs, perm)},
		{"RMDIR escaping", sftptest.Packet(fxpRmdir, 8, "/a/../../d"), sftptest.Packet(fxpRmdir, 8, m)},
		{"READLINK escaping", sftptest.Packet(fxpReadlink, 9, "../l"), sftptest.Packet(fxpReadlink, 9, m)},
		{"RENAME old escaping", sftptest.Packet(fxpRename, 10, "../a", "/b"), sftptest.Packet(fxpRename, 10, m, "/b")},
		{"RENAME new escaping", sftptest.Packet(fxpRename, 10, "/a", "../../b"), sftptest.Packet(fxpRename, 10, "/a", m)},
		{"RENAME both escaping", sftptest.Packet(fxpRename, 10, "../a", "/../b"), sftptest.Packet(fxpRename, 10, m, m)},
		{"RENAME inside", sftptest.Packet(fxpRename, 10, "/a", "/b/../c"), nil},
		{"SYMLINK target escaping", sftptest.Packet(fxpSymlink, 11, "../../etc/passwd", "/l"), sftptest.Packet(fxpSymlink, 11, m, "/l")},
		{"SYMLINK link escaping", sftptest.Packet(fxpSymlink, 11, "/t", "../l"), sftptest.Packet(fxpSymlink, 11, "/t", m)},
		{"posix-rename escaping", sftptest.Packet(fxpExtended, 12, "posix-rename@openssh.com", "/a", "../b"),
			sftptest.Packet(fxpExtended, 12, "posix-rename@openssh.com", "/a", m)},
		{"posix-rename inside", sftptest.Packet(fxpExtended, 12, "posix-rename@openssh.com", "/a", "/b"), nil},
		{"hardlink both escaping", sftptest.Packet(fxpExtended, 13, "hardlink@openssh.com", "../a", "../b"),
			sftptest.Packet(fxpExtended, 13, "hardlink@openssh.com", m, m)},
		{"statvfs escaping", sftptest.Packet(fxpExtended, 14, "statvfs@openssh.com", "../x"),
			sftptest.Packet(fxpExtended, 14, "statvfs@openssh.com", m)},
		{"unknown extended request", sftptest.Packet(fxpExtended, 15, "expand-path@openssh.com", "../x"), nil},
		{"extended without fields", sftptest.Packet(fxpExtended, 15, "limits@openssh.com"), nil},
		{"marker itself is left alone", sftptest.Packet(fxpStat, 16, m), nil},
		// Packets it cannot parse are left for the SFTP library to refuse.
		{"truncated extended name", sftptest.Packet(fxpExtended, 17, uint32(50), []byte("posix")), nil},
		{"truncated path", sftptest.Packet(fxpOpen, 18, uint32(100), []byte("../x")), nil},
		{"path length past the packet", sftptest.Packet(fxpStat, 18, uint32(0xffffffff), []byte("../x")), nil},
		{"RENAME second path truncated", sftptest.Packet(fxpRename, 19, "../a", uint32(9), []byte("/b")), nil},
		{"no fields at all", sftptest.Packet(fxpStat, 20), nil},
		{"extended without a name", sftptest.Packet(fxpExtended, 21), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := bytes.Clone(tt.in)
			out, rewritten := rewriteEscapes(in)
			if !bytes.Equal(in, tt.in) {
				t.Fatal("rewriteEscapes modified its input")
			}
			if tt.want == nil {
				if rewritten || !bytes.Equal(out, tt.in) {
					t.Fatalf("packet changed (rewritten=%v):\n got %q\nwant %q", rewritten, out, tt.in)
				}
				return
			}
			if !rewritten {
				t.Fatalf("rewritten = false, want true (out %q)", out)
			}
			if n := binary.BigEndian.Uint32(out); int(n) != len(out)-4 {
				t.Fatalf("length prefix %d, want %d", n, len(out)-4)
			}
			if !bytes.Equal(out, tt.want) {
				t.Fatalf("rewritten packet\n got %q\nwant %q", out, tt.want)
			}
		})
	}
}

// TestRewriteEscapesShortPacket: a path-carrying packet too short to hold a
// request id (length 1 to 4) reaches rewriteEscapes from pathGuard.Read.
func TestRewriteEscapesShortPacket(t *testing.T) {
	t.Parallel()
	for length := 1; length <= 4; length++ {
		pkt := make([]byte, 4+length)
		binary.BigEndian.PutUint32(pkt, uint32(length))
		pkt[4] = fxpStat
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("length %d: panic: %v", length, r)
				}
			}()
			if out, rewritten := rewriteEscapes(pkt); rewritten || !bytes.Equal(out, pkt) {
				t.Errorf("length %d: packet changed", length)
			}
		}()
		// The same through the guard, as a client would send it.
		g := newPathGuard(fakeChannel{bytes.NewReader(pkt)}, new(atomic.Int64), nil)
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("length %d through pathGuard: panic: %v", length, r)
				}
			}()
			_, _ = io.ReadAll(g)
		}()
	}
}

// fakeChannel is the read side of an SSH channel.
type fakeChannel struct{ io.Reader }

func (fakeChannel) Write(p []byte) (int, error) { return len(p), nil }
func (fakeChannel) Close() error                { return nil }

// guardStream is a session's worth of requests and the stream the SFTP
// library must see after the guard.
func guardStream() (in, want []byte) {
	const m = escapeMarker
	big := strings.Repeat("w", 200<<10) // streams through, never buffered
	small := strings.Repeat("s", 32<<10)
	pairs := [][2][]byte{
		{sftptest.Packet(fxpInit, 3), nil},
		{sftptest.Packet(fxpOpen, 1, "../x", uint32(0x1a), uint32(0)), sftptest.Packet(fxpOpen, 1, m, uint32(0x1a), uint32(0))},
		{sftptest.Packet(fxpOpen, 2, "/data.csv", uint32(0x1a), uint32(0)), nil},
		{sftptest.Packet(fxpWrite, 3, "h1", uint64(0), big), nil},
		{sftptest.Packet(fxpStat, 4, "/ok"), nil},
		{sftptest.Packet(fxpRename, 5, "/a", "../../b"), sftptest.Packet(fxpRename, 5, "/a", m)},
		{sftptest.Packet(fxpWrite, 6, "h1", uint64(len(big)), small), nil},
		{sftptest.Packet(fxpRead, 7, "h2", uint64(0), uint32(32768)), nil},
		{sftptest.Packet(fxpFstat, 8, "h2"), nil},
		{sftptest.Packet(fxpExtended, 9, "hardlink@openssh.com", "../a", "/../b"),
			sftptest.Packet(fxpExtended, 9, "hardlink@openssh.com", m, m)},
		{sftptest.Packet(fxpRealpath, 10, "../x"), nil}, // RealPath confines; not the guard's business
		{sftptest.Packet(fxpClose, 11, "h1"), nil},
	}
	for _, p := range pairs {
		in = append(in, p[0]...)
		if p[1] == nil {
			want = append(want, p[0]...)
		} else {
			want = append(want, p[1]...)
		}
	}
	return in, want
}

func TestPathGuardRead(t *testing.T) {
	t.Parallel()
	in, want := guardStream()
	tests := []struct {
		name string
		read func(g *pathGuard) ([]byte, error)
		src  func([]byte) io.Reader
	}{
		{"whole reads", func(g *pathGuard) ([]byte, error) { return io.ReadAll(g) }, func(b []byte) io.Reader { return bytes.NewReader(b) }},
		{"one-byte channel reads", func(g *pathGuard) ([]byte, error) { return io.ReadAll(g) }, func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) }},
		{"half channel reads", func(g *pathGuard) ([]byte, error) { return io.ReadAll(g) }, func(b []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(b)) }},
		{"data with EOF", func(g *pathGuard) ([]byte, error) { return io.ReadAll(g) }, func(b []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) }},
		{"one-byte guard reads", func(g *pathGuard) ([]byte, error) { return io.ReadAll(iotest.OneByteReader(g)) }, func(b []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(b)) }},
		{"7-byte guard reads", func(g *pathGuard) ([]byte, error) { return readInPieces(g, 7) }, func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := newPathGuard(fakeChannel{tt.src(in)}, new(atomic.Int64), nil)
			got, err := tt.read(g)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("guard output differs from the expected stream (%d bytes, want %d)", len(got), len(want))
			}
		})
	}
}

func readInPieces(r io.Reader, size int) ([]byte, error) {
	var out []byte
	buf := make([]byte, size)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// TestPathGuardLargestPacket: a packet of the largest size the guard
// takes passes whole, after the buffer held others.
func TestPathGuardLargestPacket(t *testing.T) {
	t.Parallel()
	small := sftptest.Packet(fxpStat, 1, "/ok")
	largest := sftptest.Packet(fxpWrite, 2, "h", uint64(0), strings.Repeat("x", maxPacket-22)) // type, id, handle, offset, length
	if got := len(largest); got != 4+maxPacket {
		t.Fatalf("test packet of %d bytes, want %d", got, 4+maxPacket)
	}
	in := append(append(bytes.Clone(small), largest...), small...)
	g := newPathGuard(fakeChannel{iotest.HalfReader(bytes.NewReader(in))}, new(atomic.Int64), nil)
	got, err := io.ReadAll(g)
	if err != nil || !bytes.Equal(got, in) {
		t.Fatalf("guard passed %d of %d bytes, err %v", len(got), len(in), err)
	}
}

func TestPathGuardErrors(t *testing.T) {
	t.Parallel()
	header := func(length uint32, typ byte) []byte {
		return append(binary.BigEndian.AppendUint32(nil, length), typ)
	}
	tests := []struct {
		name    string
		in      []byte
		want    []byte // output before the error
		wantErr string // "" = io.EOF at the end
	}{
		{"zero length", header(0, fxpWrite), nil, "sftp packet of 0 bytes refused"},
		{"over the maximum", header(maxPacket+1, fxpWrite), nil, "refused"},
		{"over the maximum with a path", header(1<<31, fxpOpen), nil, "refused"},
		{"header cut short", []byte{0, 0, 0}, nil, io.ErrUnexpectedEOF.Error()},
		{"path packet cut short", sftptest.Packet(fxpStat, 1, "../x")[:9], nil, io.ErrUnexpectedEOF.Error()},
		{
			name: "bytes after a packet",
			in:   append(sftptest.Packet(fxpStat, 1, "/ok"), header(0, fxpStat)...),
			want: sftptest.Packet(fxpStat, 1, "/ok"), wantErr: "0 bytes refused",
		},
		{
			// Packets are handed on whole or not at all.
			name: "write packet cut short", in: sftptest.Packet(fxpWrite, 1, "h", uint64(0), "abcdef")[:20],
			wantErr: io.ErrUnexpectedEOF.Error(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := newPathGuard(fakeChannel{bytes.NewReader(tt.in)}, new(atomic.Int64), nil)
			got, err := io.ReadAll(g)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("err = %v, want EOF", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("output %q, want %q", got, tt.want)
			}
		})
	}
}

// guardReference is the guard's contract, one whole packet at a time: path
// packets are rewritten by rewriteEscapes, all others pass unchanged, the
// stream stops at the first malformed header or cut-off packet.
func guardReference(in []byte) (out []byte, pathPackets int) {
	for len(in) >= 5 {
		length := int(binary.BigEndian.Uint32(in))
		if length < 1 || length > maxPacket || len(in) < 4+length {
			break
		}
		pkt := in[:4+length]
		if carriesPath(in[4]) {
			pathPackets++
			pkt, _ = rewriteEscapes(bytes.Clone(pkt))
		}
		out = append(out, pkt...)
		in = in[4+length:]
	}
	return out, pathPackets
}

func FuzzPathGuard(f *testing.F) {
	in, _ := guardStream()
	f.Add(in[:4096], uint8(7))
	f.Add(sftptest.Packet(fxpOpen, 1, "../x", uint32(0), uint32(0)), uint8(1))
	f.Add(sftptest.Packet(fxpRename, 1, "..", "/../..")[:12], uint8(3))
	f.Add(append(sftptest.Packet(fxpExtended, 2, "posix-rename@openssh.com", "..", ".."), sftptest.Packet(fxpWrite, 3, "h", uint64(0), "data")...), uint8(255))
	f.Add(sftptest.Packet(fxpExtended, 2, "statvfs@openssh.com", "/a/../.."), uint8(2))
	f.Add([]byte{0, 0, 0, 9, fxpSymlink, 0, 0, 0, 1, 0, 0, 0, 0}, uint8(4))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, fxpOpen}, uint8(5))
	f.Fuzz(func(t *testing.T, in []byte, readSize uint8) {
		want, pathPackets := guardReference(in)
		g := newPathGuard(fakeChannel{iotest.HalfReader(bytes.NewReader(in))}, new(atomic.Int64), nil)
		buf := make([]byte, int(readSize)+1)
		var got []byte
		for reads := 0; ; reads++ {
			if reads > len(in)+len(want)+10 { // every read but the last yields a byte
				t.Fatalf("no progress after %d reads", reads)
			}
			n, err := g.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
		}
		// Each escaping path grows by at most the marker's length, and a
		// packet has at most two paths.
		if limit := len(in) + 2*len(escapeMarker)*pathPackets; len(got) > limit {
			t.Fatalf("guard produced %d bytes from %d (limit %d)", len(got), len(in), limit)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("guard output (%d bytes) differs from the packet-wise rewrite (%d bytes)", len(got), len(want))
		}
	})
}
