package sftpd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// escapeMarker replaces, inside a request, any path that climbs above the
// home directory. The SFTP library normalises "../x" to "/x" before the
// file system sees it, which would confine the request silently; an escape
// attempt is worth refusing and auditing instead. The NUL byte keeps the
// marker from ever matching a path a client could legitimately use.
const escapeMarker = "/\x00escape"

// ErrEscape reports a path that tries to leave the home directory.
var ErrEscape = errors.New("path leaves the home directory")

// SFTP v3 packet types that carry paths (draft-ietf-secsh-filexfer-02).
const (
	fxpOpen     = 3
	fxpLstat    = 7
	fxpSetstat  = 9
	fxpOpendir  = 11
	fxpRemove   = 13
	fxpMkdir    = 14
	fxpRmdir    = 15
	fxpStat     = 17
	fxpRename   = 18
	fxpReadlink = 19
	fxpSymlink  = 20
	fxpExtended = 200
)

// maxPacket bounds a request the guard will hold in memory, a little over
// the longest the SFTP library takes (maxPacketLength), which refuses the
// rest anyway.
const maxPacket = maxPacketLength + 1024

// readBuffer is what the guard reads from the channel at once while
// requests come large (writes): a whole packet of the largest size with
// its length, or several smaller ones. Such buffers are shared through
// largeBuffers: a session holds one only while it has a large request
// under way, so that a thousand idle sessions do not hold 256 KiB each.
const readBuffer = 4 + maxPacket

// smallReadBuffer is the buffer of a session between large requests:
// room for a long path, or many pipelined read requests.
const smallReadBuffer = 4 << 10

var largeBuffers = sync.Pool{New: func() any {
	b := make([]byte, readBuffer)
	return &b
}}

// An inlineServer answers some requests itself, in the goroutine that reads
// them, before the SFTP library would see them.
type inlineServer interface {
	// serve answers pkt (a whole packet, length included, valid only
	// during the call) and reports true, or reports false to pass it on.
	// An error ends the session.
	serve(pkt []byte) (bool, error)
	// idle is called before the guard waits for the client's next
	// request: the client may be waiting for an answer held back. A
	// request begun is finished without answers.
	idle()
}

// pathGuard sits between the SSH channel and the SFTP server. It reads the
// client's requests whole, rewrites escaping paths to escapeMarker, and
// hands each to the inline server, if any, or on to the SFTP library.
type pathGuard struct {
	io.ReadWriteCloser
	inline inlineServer // nil: every request goes on

	buf        []byte // read from the channel; buf[start:end] not yet taken
	start, end int
	small      []byte  // buf between large requests
	large      *[]byte // buf while one is read, from largeBuffers; nil when none
	out        []byte  // the packet being handed to the SFTP library

	last    atomic.Int64  // UnixNano of the last bytes from the client, for the idle timeout
	escapes int           // escape attempts rewritten, for the session's log
	counted *atomic.Int64 // requests read, for the reply packer
}

func newPathGuard(ch io.ReadWriteCloser, counted *atomic.Int64, inline inlineServer) *pathGuard {
	g := &pathGuard{ReadWriteCloser: ch, counted: counted, inline: inline}
	g.last.Store(time.Now().UnixNano())
	return g
}

// grow moves the buffered bytes have into a large buffer.
func (g *pathGuard) grow(have []byte) {
	g.large = largeBuffers.Get().(*[]byte)
	g.end, g.start = copy(*g.large, have), 0
	g.buf = *g.large
}

// shrink gives the large buffer back, once it holds nothing.
func (g *pathGuard) shrink() {
	if g.large != nil {
		largeBuffers.Put(g.large)
		g.large, g.buf = nil, g.small
	}
}

// lastRequest is when the client last sent anything.
func (g *pathGuard) lastRequest() time.Time { return time.Unix(0, g.last.Load()) }

func (g *pathGuard) Read(p []byte) (int, error) {
	for len(g.out) == 0 {
		pkt, err := g.next()
		if err != nil {
			return 0, err
		}
		if carriesPath(pkt[4]) {
			var rewritten bool
			if pkt, rewritten = rewriteEscapes(pkt); rewritten {
				g.escapes++
			}
		}
		if g.inline == nil {
			g.out = pkt
			continue
		}
		served, err := g.inline.serve(pkt)
		if err != nil {
			return 0, err
		}
		if !served {
			g.out = pkt
		}
	}
	n := copy(p, g.out)
	g.out = g.out[n:]
	return n, nil
}

// next returns the next whole packet, valid until the following call.
func (g *pathGuard) next() ([]byte, error) {
	if g.buf == nil {
		g.small = make([]byte, smallReadBuffer)
		g.buf = g.small
	}
	for {
		have := g.buf[g.start:g.end]
		want := 5 // length and type
		if len(have) >= 4 {
			length := int(binary.BigEndian.Uint32(have))
			if length < 1 || length > maxPacket {
				return nil, fmt.Errorf("sftp packet of %d bytes refused", length)
			}
			want = 4 + length
		}
		if len(have) >= want {
			g.start += want
			g.counted.Add(1)
			return have[:want:want], nil
		}
		switch {
		case len(have) == 0:
			g.start, g.end = 0, 0
			g.shrink()
			// Between requests: the client may wait for an answer.
			if g.inline != nil {
				g.inline.idle()
			}
		case want > len(g.buf):
			g.grow(have)
		case len(g.buf)-g.start < want:
			g.end = copy(g.buf, have)
			g.start = 0
		}
		n, err := g.ReadWriteCloser.Read(g.buf[g.end:])
		if n > 0 {
			g.end += n
			g.last.Store(time.Now().UnixNano())
			continue
		}
		if err == nil {
			err = io.ErrNoProgress
		}
		if errors.Is(err, io.EOF) && g.end > g.start {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
}

func carriesPath(t byte) bool {
	switch t {
	case fxpOpen, fxpLstat, fxpSetstat, fxpOpendir, fxpRemove, fxpMkdir, fxpRmdir,
		fxpStat, fxpRename, fxpReadlink, fxpSymlink, fxpExtended:
		return true
	}
	return false
}

// rewriteEscapes returns pkt (length-prefixed) with escaping paths replaced.
// A packet it cannot parse is returned unchanged for the SFTP library to
// reject.
func rewriteEscapes(pkt []byte) ([]byte, bool) {
	if len(pkt) < 9 { // too short for a request id
		return pkt, false
	}
	body := pkt[9:] // length, type, request id
	paths := 1
	switch pkt[4] {
	case fxpRename, fxpSymlink:
		paths = 2
	case fxpExtended:
		name, rest, ok := sshString(body)
		if !ok {
			return pkt, false
		}
		switch name {
		case "posix-rename@openssh.com", "hardlink@openssh.com":
			paths = 2
		case "statvfs@openssh.com":
		default:
			return pkt, false
		}
		body = rest
	}
	prefix := pkt[:len(pkt)-len(body)]
	var fields [][]byte
	rewritten := false
	for range paths {
		s, rest, ok := sshString(body)
		if !ok {
			return pkt, false
		}
		if escapes(s) {
			s = escapeMarker
			rewritten = true
		}
		fields = append(fields, []byte(s))
		body = rest
	}
	if !rewritten {
		return pkt, false
	}
	out := append([]byte(nil), prefix...)
	for _, f := range fields {
		out = binary.BigEndian.AppendUint32(out, uint32(len(f)))
		out = append(out, f...)
	}
	out = append(out, body...)
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	return out, true
}

func sshString(b []byte) (string, []byte, bool) {
	if len(b) < 4 {
		return "", nil, false
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return "", nil, false
	}
	return string(b[4 : 4+n]), b[4+n:], true
}

// escapes reports whether p, taken relative to "/", climbs above "/" at any
// point — as "../x" or "/a/../../x" do. "/a/../b" stays inside and passes.
func escapes(p string) bool {
	depth := 0
	for _, elem := range strings.Split(p, "/") {
		switch elem {
		case "", ".":
		case "..":
			if depth--; depth < 0 {
				return true
			}
		default:
			depth++
		}
	}
	return false
}
