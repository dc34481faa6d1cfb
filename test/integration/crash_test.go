package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
)

// TestKillDuringUpload: SIGKILL of airlock mid-upload leaves nothing landed
// and, after restart, the transfer failed; the supplier can upload again.
func TestKillDuringUpload(t *testing.T) {
	t.Parallel()
	key := newClientKey(t)
	g := newGateway(t, gatewayOpts{suppliers: []supplierSpec{{name: "acme", keys: []clientKey{key}}}})
	g.start()
	large, largeSHA := randomFile(t, largeSize)

	// -l caps the client at ~50 MB/s so the kill lands mid-upload.
	client := g.sftpCommand("acme", key, fmt.Sprintf("put %s big.bin\n", large), "-l", "400000")
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "20 MB to arrive", func() bool {
		return g.metric("airlock_sftp_upload_bytes_total") > 20e6
	})
	g.kill()
	if err := client.Wait(); err == nil {
		t.Fatal("the client did not notice the server dying")
	}

	g.start()
	tr, ok := transferAt(g.transfers(), "acme", "/big.bin")
	if !ok || tr.State != ledger.Failed || !strings.Contains(tr.Error, "interrupted") {
		t.Fatalf("after restart the transfer is %+v, want failed/interrupted", tr)
	}
	if files := landedFiles(t, g.landing); len(files) != 0 {
		t.Fatalf("landing holds %v after the crash", files)
	}

	if out, err := g.sftpBatch("acme", key, fmt.Sprintf("put %s big.bin\n", large)); err != nil {
		t.Fatalf("upload after restart: %v\n%s", err, out)
	}
	assertLanded(t, g, g.landing, "acme", "/big.bin", largeSHA, largeSize)
}

// TestClientDiesDuringUpload: a session that dies mid-upload leaves no
// landed file and a failed row with the reason.
func TestClientDiesDuringUpload(t *testing.T) {
	t.Parallel()
	key := newClientKey(t)
	g := newGateway(t, gatewayOpts{suppliers: []supplierSpec{{name: "acme", keys: []clientKey{key}}}})
	g.start()
	large, _ := randomFile(t, largeSize)

	client := g.sftpCommand("acme", key, fmt.Sprintf("put %s big.bin\n", large), "-l", "400000")
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "10 MB to arrive", func() bool {
		return g.metric("airlock_sftp_upload_bytes_total") > 10e6
	})
	_ = client.Process.Kill()
	_ = client.Wait()

	eventually(t, 10*time.Second, "the transfer to fail", func() bool {
		tr, ok := transferAt(g.transfers(), "acme", "/big.bin")
		return ok && tr.State == ledger.Failed
	})
	tr, _ := transferAt(g.transfers(), "acme", "/big.bin")
	if !strings.Contains(tr.Error, "connection lost") {
		t.Fatalf("failure reason %q does not say the connection was lost", tr.Error)
	}
	if files := landedFiles(t, g.landing); len(files) != 0 {
		t.Fatalf("landing holds %v after the client died", files)
	}
}
