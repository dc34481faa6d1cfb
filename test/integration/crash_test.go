package integration

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/storage"
)

// TestKillDuringUpload: SIGKILL of airlock mid-upload, once the upload is
// recorded (it has run a second), leaves nothing landed and, after restart,
// the transfer failed; the supplier can upload again.
func TestKillDuringUpload(t *testing.T) {
	t.Parallel()
	g, key := startAcme(t, gatewayOpts{}, supplierSpec{})
	large, largeSHA := randomFile(t, largeSize)

	// -l caps the client at ~50 MB/s so the kill lands mid-upload.
	client := g.sftpCommand("acme", key, fmt.Sprintf("put %s big.bin\n", large), "-l", "400000")
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "20 MB to arrive and the upload to be recorded", func() bool {
		_, recorded := transferAt(g.transfers(), "acme", "/big.bin")
		return recorded && g.metric("airlock_sftp_upload_bytes_total") > 20e6
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
	assertArrived(t, g, "acme", "/big.bin", largeSHA, largeSize)
}

// TestClientDiesDuringUpload: a session that dies mid-upload leaves no
// landed file, and an interrupted row with the reason, its bytes kept to
// resume (see resume_test.go).
func TestClientDiesDuringUpload(t *testing.T) {
	t.Parallel()
	g, key := startAcme(t, gatewayOpts{}, supplierSpec{})
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

	eventually(t, 10*time.Second, "the transfer to be interrupted", func() bool {
		tr, ok := transferAt(g.transfers(), "acme", "/big.bin")
		return ok && tr.State == ledger.Interrupted
	})
	tr, _ := transferAt(g.transfers(), "acme", "/big.bin")
	if !strings.Contains(tr.Error, "connection lost") {
		t.Fatalf("interruption reason %q does not say the connection was lost", tr.Error)
	}
	// What arrived is kept to resume, apart from what landed whole.
	files := landedFiles(t, g.landing)
	if len(files) != 1 || !strings.Contains(files[0], storage.KeptDir) || bytesBelow(filepath.Join(g.landing, storage.KeptDir)) != tr.Size {
		t.Fatalf("landing holds %v after the client died; want the %d bytes received kept to resume", files, tr.Size)
	}
}

// TestKillDuringDelivery: airlock is killed while it copies a file into a
// local destination directory. After the restart the file is delivered,
// and the directory holds it alone: nothing of the interrupted copy stays
// beside it for whoever reads the destination to trip over.
func TestKillDuringDelivery(t *testing.T) {
	t.Parallel()
	g, key := startAcme(t, gatewayOpts{}, supplierSpec{})
	large, largeSHA := randomFile(t, largeSize)
	client := g.sftpCommand("acme", key, fmt.Sprintf("put %s big.bin\n", large))
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	// The kill lands once the ledger says delivering and before the file
	// is whole at the destination: during the copy. The ledger is read
	// directly, as often as a 200 MB copy needs to be caught in the act.
	l := g.openLedger(t)
	defer l.Close()
	final := g.destFile("acme", "/big.bin")
	eventually(t, 60*time.Second, "the delivery of big.bin to start", func() bool {
		trs, err := l.List(t.Context(), ledger.Filter{Supplier: "acme", Path: "/big.bin", Limit: 1})
		if err != nil || len(trs) == 0 || trs[0].State != ledger.Delivering {
			return false
		}
		_, err = os.Stat(final)
		return os.IsNotExist(err)
	})
	g.kill()
	if err := client.Wait(); err != nil {
		t.Fatalf("the upload failed: %v", err)
	}
	dest := g.specs["acme"].dest.dir
	t.Logf("killed while the destination held %v", landedFiles(t, dest))

	g.start()
	assertArrived(t, g, "acme", "/big.bin", largeSHA, largeSize)
	if got := landedFiles(t, dest); len(got) != 1 {
		t.Errorf("the destination holds %v, want big.bin alone", got)
	}
}

// TestPipelineSurvivesKills: airlock is killed (SIGKILL) at random points
// while 200-file batches are uploaded by four OpenSSH clients at once and
// earlier files are scanned and delivered, three times over, and restarted
// each time. In the end every file a client saw acknowledged is delivered
// exactly once with its sha256, no upload that completed is lost, nothing
// is left in landing or on its way, and the audit chain verifies. Uploads
// cut off by a kill may fail, saying so.
func TestPipelineSurvivesKills(t *testing.T) {
	t.Parallel()
	const rounds, files, clients = 3, 200, 4
	key := newClientKey(t)
	g := newGateway(t, gatewayOpts{suppliers: []supplierSpec{{name: "acme", keys: []clientKey{key}}}})
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d", seed)

	srcDir := t.TempDir()
	shas := map[string]string{} // remote path → sha256 of its source
	acked := map[string]bool{}  // remote paths a client saw acknowledged
	received := 0               // uploads received before the kills, at least
	for round := range rounds {
		batches := make([]strings.Builder, clients)
		for i := range files {
			name := fmt.Sprintf("r%d-f%03d.bin", round, i)
			content := pseudoRandom(1<<10+rng.IntN(7<<10), byte(i))
			content[0], content[1] = byte(round), byte(i) // no two files alike
			writeFile(t, filepath.Join(srcDir, name), string(content))
			shas["/"+name] = sha256Hex(content)
			fmt.Fprintf(&batches[i%clients], "put %s %s\n", filepath.Join(srcDir, name), name)
		}
		g.start()
		killAt := files/10 + rng.IntN(files*3/4) // uploads received in this round before the kill
		type result struct {
			out string
			err error
		}
		results := make(chan result, clients)
		for c := range clients {
			cmd := g.sftpCommand("acme", key, batches[c].String())
			var stdout, stderr syncBuffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() {
				err := cmd.Wait()
				results <- result{stdout.String(), err}
			}()
		}
		eventually(t, 60*time.Second, fmt.Sprintf("round %d: %d uploads to be received", round, killAt), func() bool {
			return g.metric(`airlock_sftp_uploads_total{outcome="received"}`) >= float64(killAt)
		})
		time.Sleep(time.Duration(rng.IntN(100)) * time.Millisecond)
		g.kill()
		received += killAt
		t.Logf("round %d: killed after %d uploads were received", round, killAt)
		for range clients {
			select {
			case r := <-results:
				for _, p := range acknowledged(r.out, r.err) {
					acked[p] = true
				}
			case <-time.After(30 * time.Second):
				t.Fatal("an sftp client is still running 30s after airlock was killed")
			}
		}
	}
	g.start()

	trs := g.waitRows(t, 60*time.Second, "every transfer to come to rest after the last restart", func(trs []ledger.Transfer) bool {
		return !slices.ContainsFunc(trs, func(tr ledger.Transfer) bool { return !g.rests(tr) })
	})
	delivered := map[string]int{}
	for _, tr := range trs {
		switch {
		case tr.State == ledger.Delivered:
			delivered[tr.Path]++
		case tr.SHA256 != "":
			t.Errorf("%s completed its upload (sha256 %.12s) and then was %s: %q", tr.Path, tr.SHA256, tr.State, tr.Error)
		case tr.State != ledger.Failed || !strings.Contains(tr.Error, "interrupted") && !strings.Contains(tr.Error, "connection lost"):
			t.Errorf("%s: %s %q, want failed as cut off", tr.Path, tr.State, tr.Error)
		}
	}
	for p := range acked {
		if delivered[p] != 1 {
			t.Errorf("%s was acknowledged to the client; %d transfers of it were delivered, want 1", p, delivered[p])
		}
	}
	// The destination holds exactly the delivered files, each once and
	// whole: no duplicate, no staged leftover of an interrupted copy.
	got := objects(t, g.specs["acme"].dest.dir)
	for p, n := range delivered {
		if n != 1 {
			t.Errorf("%s: %d transfers delivered, want 1", p, n)
		}
		if sha := got[strings.TrimPrefix(p, "/")]; sha != shas[p] {
			t.Errorf("delivered %s has sha256 %q, want %s", p, sha, shas[p])
		}
	}
	if len(got) != len(delivered) {
		var extra []string
		for k := range got {
			if delivered["/"+k] == 0 {
				extra = append(extra, k)
			}
		}
		t.Errorf("the destination holds %d files for %d delivered transfers; no transfer delivered %v (left by an interrupted copy?)", len(got), len(delivered), extra)
	}
	if files := landedFiles(t, g.landingDir); len(files) != 0 {
		t.Errorf("landing still holds %d files: %v", len(files), files)
	}
	t.Logf("%d uploads acknowledged, %d delivered, %d transfers in all", len(acked), len(delivered), len(trs))
	// Each client may have had one upload received but not yet
	// acknowledged when a kill came.
	if len(acked) < received-rounds*clients {
		t.Errorf("only %d uploads were acknowledged, yet %d were received before the kills: the client output was misread", len(acked), received)
	}
	g.auditVerifies(t)
}

// acknowledged returns the remote paths whose put the OpenSSH client
// completed, from its batch-mode output: it echoes each command ("sftp>
// put SRC DST") before running it and stops at the first that fails. So
// every put echoed before the last one was acknowledged, and the last one
// too when the client exited cleanly.
func acknowledged(out string, err error) []string {
	var puts []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "sftp>" && f[1] == "put" {
			puts = append(puts, "/"+f[3])
		}
	}
	if err != nil && len(puts) > 0 {
		puts = puts[:len(puts)-1]
	}
	return puts
}
