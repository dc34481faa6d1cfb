package sftpd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
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

// maxPacket bounds a request the guard will hold in memory; the SFTP
// library refuses larger ones anyway.
const maxPacket = 256*1024 + 1024

// pathGuard sits between the SSH channel and the SFTP server and rewrites
// escaping paths to escapeMarker. Packets without paths (notably WRITE and
// READ, the bulk of the traffic) stream through without being buffered.
type pathGuard struct {
	io.ReadWriteCloser
	out     []byte // rewritten packet not yet handed to the reader
	passing int    // bytes of the current packet left to stream through
	hdr     [5]byte
	last    atomic.Int64  // UnixNano of the last request, for the idle timeout
	escapes int           // escape attempts rewritten, for the session's log
	counted *atomic.Int64 // requests read, for the reply packer
}

func newPathGuard(ch io.ReadWriteCloser, counted *atomic.Int64) *pathGuard {
	g := &pathGuard{ReadWriteCloser: ch, counted: counted}
	g.last.Store(time.Now().UnixNano())
	return g
}

// lastRequest is when the last request began to arrive.
func (g *pathGuard) lastRequest() time.Time { return time.Unix(0, g.last.Load()) }

func (g *pathGuard) Read(p []byte) (int, error) {
	if len(g.out) > 0 {
		n := copy(p, g.out)
		g.out = g.out[n:]
		return n, nil
	}
	if g.passing > 0 {
		n, err := g.ReadWriteCloser.Read(p[:min(len(p), g.passing)])
		g.passing -= n
		return n, err
	}
	if _, err := io.ReadFull(g.ReadWriteCloser, g.hdr[:]); err != nil {
		return 0, err
	}
	g.last.Store(time.Now().UnixNano())
	g.counted.Add(1)
	length := int(binary.BigEndian.Uint32(g.hdr[:4]))
	if length < 1 || length > maxPacket {
		return 0, fmt.Errorf("sftp packet of %d bytes refused", length)
	}
	if !carriesPath(g.hdr[4]) {
		g.out = append(g.out[:0], g.hdr[:]...)
		g.passing = length - 1
		return g.Read(p)
	}
	pkt := make([]byte, 4+length)
	copy(pkt, g.hdr[:])
	if _, err := io.ReadFull(g.ReadWriteCloser, pkt[5:]); err != nil {
		return 0, err
	}
	var rewritten bool
	g.out, rewritten = rewriteEscapes(pkt)
	if rewritten {
		g.escapes++
	}
	return g.Read(p)
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
