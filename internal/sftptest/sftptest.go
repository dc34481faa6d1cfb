// Package sftptest speaks SFTP v3 (draft-ietf-secsh-filexfer-02) by hand,
// for tests: to send packets github.com/pkg/sftp would never build, and to
// read the status messages its client folds into os.ErrPermission or
// os.ErrNotExist. It is imported only by tests.
package sftptest

import (
	"encoding/binary"
	"fmt"
	"io"
	"testing"

	"golang.org/x/crypto/ssh"
)

// Packet types (SSH_FXP_*).
const (
	FXPInit          = 1
	FXPVersion       = 2
	FXPOpen          = 3
	FXPClose         = 4
	FXPRead          = 5
	FXPWrite         = 6
	FXPLstat         = 7
	FXPFstat         = 8
	FXPSetstat       = 9
	FXPOpendir       = 11
	FXPRemove        = 13
	FXPMkdir         = 14
	FXPRmdir         = 15
	FXPRealpath      = 16
	FXPStat          = 17
	FXPRename        = 18
	FXPReadlink      = 19
	FXPSymlink       = 20
	FXPFsetstat      = 10
	FXPStatus        = 101
	FXPHandle        = 102
	FXPData          = 103
	FXPAttrs         = 105
	FXPExtended      = 200
	FXPExtendedReply = 201
)

// Status codes (SSH_FX_*).
const (
	FXOK               = 0
	FXEOF              = 1
	FXNoSuchFile       = 2
	FXPermissionDenied = 3
	FXFailure          = 4
	FXBadMessage       = 5
	FXOpUnsupported    = 8
)

// Flags of an OPEN request (SSH_FXF_*).
const (
	FXFRead   = 0x01
	FXFWrite  = 0x02
	FXFAppend = 0x04
	FXFCreat  = 0x08
	FXFTrunc  = 0x10
	FXFExcl   = 0x20
)

// Packet builds a length-prefixed SFTP packet: type, request id (or the
// version, for INIT), then fields: a string is an SSH string, uint32 and
// uint64 are big-endian integers, []byte is copied as is. Any other field
// type panics.
func Packet(typ byte, id uint32, fields ...any) []byte {
	b := []byte{0, 0, 0, 0, typ}
	b = binary.BigEndian.AppendUint32(b, id)
	for _, f := range fields {
		switch v := f.(type) {
		case string:
			b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
			b = append(b, v...)
		case uint32:
			b = binary.BigEndian.AppendUint32(b, v)
		case uint64:
			b = binary.BigEndian.AppendUint64(b, v)
		case []byte:
			b = append(b, v...)
		default:
			panic(fmt.Sprintf("sftptest.Packet: field of type %T", f))
		}
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// Client is an SFTP session driven packet by packet. Its methods fail the
// test on a broken session or an answer that is not SFTP.
type Client struct {
	// Extensions are those the server announced with its version, by
	// name.
	Extensions map[string]string

	tb  testing.TB
	in  io.Writer
	out io.Reader
	id  uint32
}

// New opens the sftp subsystem in a new session of conn and exchanges
// INIT and VERSION. The session is closed when the test ends.
func New(tb testing.TB, conn *ssh.Client) *Client {
	tb.Helper()
	sess, err := conn.NewSession()
	if err != nil {
		tb.Fatalf("sftp session: %v", err)
	}
	tb.Cleanup(func() { _ = sess.Close() })
	in, err := sess.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := sess.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := sess.RequestSubsystem("sftp"); err != nil {
		tb.Fatalf("sftp subsystem: %v", err)
	}
	c := &Client{tb: tb, in: in, out: out, Extensions: make(map[string]string)}
	c.send(Packet(FXPInit, 3))
	typ, body := c.recv()
	if typ != FXPVersion {
		tb.Fatalf("answer to INIT has type %d, want VERSION", typ)
	}
	for _, rest := c.uint32(body); len(rest) > 0; {
		var name, data string
		name, rest = c.string(rest)
		data, rest = c.string(rest)
		c.Extensions[name] = data
	}
	return c
}

// Status sends a request of type typ with fields (see Packet) and returns
// the status code and message it is answered with. A request answered
// with a handle (an OPEN or OPENDIR that worked) is FXOK: the handle is
// closed at once, so a file opened for writing is an upload of nothing.
// Any other answer fails the test.
func (c *Client) Status(typ byte, fields ...any) (code uint32, msg string) {
	c.tb.Helper()
	rtyp, body := c.Call(typ, fields...)
	switch rtyp {
	case FXPStatus:
		return c.StatusOf(body)
	case FXPHandle:
		handle, _ := c.string(body)
		if code, msg := c.Status(FXPClose, handle); code != FXOK {
			return FXOK, "closed: " + msg
		}
		return FXOK, ""
	}
	c.tb.Fatalf("request type %d answered with packet type %d, want STATUS or HANDLE", typ, rtyp)
	return 0, ""
}

// OpenWrite asks to create or truncate p for writing, as an upload does,
// and returns the answer as Status does.
func (c *Client) OpenWrite(p string) (code uint32, msg string) {
	c.tb.Helper()
	return c.Status(FXPOpen, p, uint32(FXFWrite|FXFCreat|FXFTrunc), uint32(0))
}

// Call sends a request of type typ with fields (see Packet) and returns
// the type of its answer and the answer's body after the id.
func (c *Client) Call(typ byte, fields ...any) (byte, []byte) {
	c.tb.Helper()
	id := c.Send(typ, fields...)
	rtyp, got, body := c.Recv()
	if got != id {
		c.tb.Fatalf("the answer to request %d carries id %d", id, got)
	}
	return rtyp, body
}

// Send sends a request with the next id without waiting for its answer,
// and returns the id.
func (c *Client) Send(typ byte, fields ...any) uint32 {
	c.tb.Helper()
	c.id++
	c.send(Packet(typ, c.id, fields...))
	return c.id
}

// SendRaw sends pkt as it is, to send what Packet would not build.
func (c *Client) SendRaw(pkt []byte) {
	c.tb.Helper()
	c.send(pkt)
}

// Recv returns the next answer: its type, its request id and its body
// after the id.
func (c *Client) Recv() (typ byte, id uint32, body []byte) {
	c.tb.Helper()
	typ, body = c.recv()
	id, body = c.uint32(body)
	return typ, id, body
}

// StatusOf reads a status answer's code and message from body.
func (c *Client) StatusOf(body []byte) (code uint32, msg string) {
	c.tb.Helper()
	code, body = c.uint32(body)
	msg, _ = c.string(body)
	return code, msg
}

// String reads an SSH string off the front of b, such as a handle.
func (c *Client) String(b []byte) (string, []byte) {
	c.tb.Helper()
	return c.string(b)
}

func (c *Client) send(pkt []byte) {
	c.tb.Helper()
	if _, err := c.in.Write(pkt); err != nil {
		c.tb.Fatalf("sftp send: %v", err)
	}
}

// recv returns the type and body (after the type) of the next packet.
func (c *Client) recv() (byte, []byte) {
	c.tb.Helper()
	var hdr [4]byte
	if _, err := io.ReadFull(c.out, hdr[:]); err != nil {
		c.tb.Fatalf("sftp recv: %v", err)
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(c.out, body); err != nil {
		c.tb.Fatalf("sftp recv: %v", err)
	}
	if len(body) == 0 {
		c.tb.Fatal("sftp recv: a packet of 0 bytes")
	}
	return body[0], body[1:]
}

// uint32 reads a big-endian integer off the front of b.
func (c *Client) uint32(b []byte) (uint32, []byte) {
	c.tb.Helper()
	if len(b) < 4 {
		c.tb.Fatalf("sftp answer cut short: %d bytes where an integer was due", len(b))
	}
	return binary.BigEndian.Uint32(b), b[4:]
}

// string reads an SSH string off the front of b.
func (c *Client) string(b []byte) (string, []byte) {
	c.tb.Helper()
	n, b := c.uint32(b)
	if uint32(len(b)) < n {
		c.tb.Fatalf("sftp answer cut short: %d bytes left of a %d-byte string", len(b), n)
	}
	return string(b[:n]), b[n:]
}
