package sftpd

import (
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/airlock-gw/airlock/internal/sftptest"
)

// TestRefusalsBounded sends many refused requests on one connection, some
// with a path of 250 KiB of control characters, and checks that the audit
// trail records a bounded number of them one by one, each clipped, and the
// rest as one count when the connection ends.
func TestRefusalsBounded(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	conn := ts.connect(t, uploader)
	r := sftptest.New(t, conn)
	const sent = 400
	long := "/" + strings.Repeat("\x01", 250<<10)
	for i := range sent {
		p := "../x"
		if i%8 == 0 {
			p = long
		}
		if code, _ := r.Status(fxpStat, p); code == 0 {
			t.Fatalf("STAT %d succeeded", i)
		}
	}
	conn.Close()

	// The counts may come in more than one event as the connection ends.
	var suppressed, recorded, bytes int
	eventually(t, "every refusal to be recorded or counted", func() bool {
		suppressed, recorded, bytes = 0, 0, 0
		for _, ev := range ts.events(t, "request.refused.suppressed") {
			n, _ := strconv.Atoi(ev.Detail["count"])
			suppressed += n
		}
		for _, ev := range ts.events(t, "request.refused") {
			recorded++
			for _, v := range ev.Detail {
				bytes += len(v)
			}
		}
		return suppressed > 0 && recorded+suppressed >= sent
	})
	if recorded > refusalBurst+10 {
		t.Errorf("%d refusals recorded one by one, want about %d", recorded, refusalBurst)
	}
	if recorded+suppressed != sent {
		t.Errorf("%d recorded + %d counted, want %d", recorded, suppressed, sent)
	}
	if bytes > recorded*3<<10 {
		t.Errorf("%d bytes of detail for %d events: paths are not clipped", bytes, recorded)
	}
}

// TestProtocolOrder checks that a request before INIT ends the session, as
// OpenSSH's server does, and is recorded; and that a packet of a type SFTP
// v3 does not have is answered as unsupported, the session going on.
func TestProtocolOrder(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})

	t.Run("request before INIT", func(t *testing.T) {
		sess, err := ts.connect(t, uploader).NewSession()
		if err != nil {
			t.Fatal(err)
		}
		in, _ := sess.StdinPipe()
		out, _ := sess.StdoutPipe()
		if err := sess.RequestSubsystem("sftp"); err != nil {
			t.Fatal(err)
		}
		if _, err := in.Write(sftptest.Packet(fxpStat, 1, "/")); err != nil {
			t.Fatal(err)
		}
		if b, err := io.ReadAll(out); len(b) > 0 || err != nil {
			t.Errorf("answered %x, %v; want the session closed without an answer", b, err)
		}
		eventually(t, "a refusal with reason protocol", func() bool { return ts.refusals(t, "protocol") > 0 })
	})

	t.Run("unknown packet types", func(t *testing.T) {
		r := ts.rawClient(t, uploader)
		for _, typ := range []byte{2, 21, 99, 101, 105, 199, 201, 255} {
			if code, msg := r.Status(typ, "/x"); code != sftptest.FXOpUnsupported {
				t.Errorf("packet type %d: status %d %q, want unsupported", typ, code, msg)
			}
		}
		if typ, _ := r.Call(fxpStat, "/"); typ != fxpAttrs {
			t.Errorf("STAT / after unknown packets answered with type %d, want the session still serving", typ)
		}
	})
}
