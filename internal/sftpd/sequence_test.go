package sftpd

import (
	"bytes"
	"encoding/binary"
	"io"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/sftptest"
)

// pipeChannel is an SSH channel whose client side is a fixed stream of
// requests; it records what the server writes.
type pipeChannel struct {
	in  io.Reader
	mu  sync.Mutex
	out bytes.Buffer
}

func (c *pipeChannel) Read(p []byte) (int, error) { return c.in.Read(p) }
func (c *pipeChannel) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(p)
}

// written is what the server has written so far.
func (c *pipeChannel) written() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.out.Bytes())
}

func (c *pipeChannel) Close() error      { return nil }
func (c *pipeChannel) CloseWrite() error { return nil }
func (c *pipeChannel) Stderr() io.ReadWriter {
	return struct {
		io.Reader
		io.Writer
	}{bytes.NewReader(nil), io.Discard}
}
func (c *pipeChannel) SendRequest(string, bool, []byte) (bool, error) { return false, nil }

var _ ssh.Channel = (*pipeChannel)(nil)

// FuzzPacketSequence runs whole SFTP sessions of an egress supplier: INIT,
// then the fuzzer's bytes as the stream of requests, with their framing.
// Whatever the sequence, the server must not panic, must answer only with
// well-formed replies, and must leave no upload in state receiving once
// the session has ended: a cut upload fails, it is never half kept.
func FuzzPacketSequence(f *testing.F) {
	P := sftptest.Packet
	cat := func(pkts ...[]byte) []byte { return bytes.Join(pkts, nil) }
	w, wc, wct := uint32(sftptest.FXFWrite), uint32(sftptest.FXFWrite|sftptest.FXFCreat), uint32(sftptest.FXFWrite|sftptest.FXFCreat|sftptest.FXFTrunc)
	f.Add(cat(P(fxpOpen, 1, "/upload/a.csv", wct, uint32(0)), P(fxpWrite, 2, "f1", uint64(0), "abc"), P(fxpClose, 3, "f1")))
	f.Add(cat(P(fxpOpen, 1, "/upload/a.csv", wc, uint32(0)), P(fxpWrite, 2, "f1", uint64(5), "gap"), P(fxpClose, 3, "f1")))
	f.Add(cat(P(fxpOpen, 1, "/upload/a.filepart", w, uint32(0)), P(fxpWrite, 2, "f1", uint64(0), "x"),
		P(fxpClose, 3, "f1"), P(fxpRename, 4, "/upload/a.filepart", "/upload/a.csv")))
	f.Add(cat(P(fxpOpen, 1, "/upload/b", wct, uint32(0)), P(fxpWrite, 2, "f1", uint64(0), "half"))) // never closed
	f.Add(cat(P(fxpMkdir, 1, "/upload/d", uint32(0)), P(fxpOpendir, 2, "/upload"), P(fxpReaddir, 3, "1"), P(fxpClose, 4, "1"),
		P(fxpRmdir, 5, "/upload/d")))
	f.Add(cat(P(fxpOpendir, 1, "/download"), P(fxpReaddir, 2, "1"), P(fxpReaddir, 3, "1"), P(fxpOpen, 4, "/download/x", uint32(sftptest.FXFRead), uint32(0))))
	f.Add(cat(P(fxpStat, 1, "/../x"), P(fxpSetstat, 2, "/upload", uint32(0)), P(42, 3), P(fxpInit, 3)))
	f.Add(cat(P(fxpExtended, 1, "statvfs@openssh.com", "/"), P(fxpExtended, 2, limitsExtension), P(fxpRealpath, 3, ".")))

	// A write past a gap waits for the gap to fill: not long, here.
	ts := newTestServer(f, serverOptions{reorderStall: 20 * time.Millisecond})
	supplier, ok := ts.srv.suppliers().Lookup(egresser)
	if !ok {
		f.Fatal("no test supplier")
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		ch := &pipeChannel{in: io.MultiReader(bytes.NewReader(P(fxpInit, 3)), bytes.NewReader(stream))}
		sess := &session{srv: ts.srv, ctx: t.Context(), supplier: supplier, connID: "fuzz", remoteIP: "127.0.0.1",
			log: testLogger(t), held: make(map[string]ledger.Transfer), live: &liveConn{}}
		sess.refusals = newRefusals(ts.srv, sess.log, egresser, sess.remoteIP, sess.connID)
		sess.serve(t.Context(), ch)

		checkReplies(t, ch.written())
		trs, err := ts.ledger.List(t.Context(), ledger.Filter{Supplier: egresser, States: []ledger.State{ledger.Receiving}})
		if err != nil {
			t.Fatal(err)
		}
		if len(trs) > 0 {
			t.Fatalf("%d uploads still receiving after the session ended: %+v", len(trs), trs[0])
		}
	})
}

// checkReplies fails unless out is a sequence of whole SFTP replies.
func checkReplies(t *testing.T, out []byte) {
	t.Helper()
	for len(out) > 0 {
		if len(out) < 5 {
			t.Fatalf("a reply cut short: %x", out)
		}
		n := 4 + int(binary.BigEndian.Uint32(out))
		if n > len(out) || n < 5 {
			t.Fatalf("a reply of %d bytes with %d left", n, len(out))
		}
		switch out[4] {
		case fxpVersion, fxpStatus, fxpHandle, fxpData, 104, fxpAttrs, fxpExtendedReply:
		default:
			t.Fatalf("a reply of type %d", out[4])
		}
		out = out[n:]
	}
}
