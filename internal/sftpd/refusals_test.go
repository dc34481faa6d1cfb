package sftpd

import (
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

	var suppressed int
	eventually(t, "the count of refusals over the budget", func() bool {
		suppressed = 0
		for _, ev := range ts.events(t, "request.refused.suppressed") {
			n, _ := strconv.Atoi(ev.Detail["count"])
			suppressed += n
		}
		return suppressed > 0
	})
	recorded, bytes := 0, 0
	for _, ev := range ts.events(t, "request.refused") {
		recorded++
		for _, v := range ev.Detail {
			bytes += len(v)
		}
	}
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
