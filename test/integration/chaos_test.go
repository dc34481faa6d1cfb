package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkg/sftp"

	"github.com/airlock-gw/airlock/internal/ledger"
)

// chaosFile is one file of the chaos test as its client saw it.
type chaosFile struct {
	path     string
	data     []byte
	sha      string
	attempts int
	ok       bool  // the client was told the upload succeeded
	lastErr  error // what it was told of the last failure
}

// TestChaosKillNodes: three nodes on one Postgres and one S3 landing
// behind HAProxy (send-proxy-v2, health-checked on /readyz); 20 clients
// upload 1,000 files in all while a node, picked at random, is killed -9
// and started again, with each quarter of the files and at least every
// 10 s. Each client retries a failed upload, as a batch job does. Every
// upload a client was told succeeded is delivered, with its bytes; every
// failure was an error the client saw; no transfer is left receiving,
// none is delivered twice unless its client sent it twice, and the audit
// chain verifies.
func TestChaosKillNodes(t *testing.T) {
	t.Parallel()
	const clients, perClient = 20, 50
	c := newCluster(t)
	var nodes []*gateway
	var servers []haproxyServer
	for i := range 3 {
		g := c.node(t, fmt.Sprintf("c%d", i+1), gatewayOpts{sftpExtra: "  proxy_protocol:\n    trusted: [\"127.0.0.1/32\"]\n"})
		g.start() // one after another: the first creates the tables
		nodes = append(nodes, g)
		servers = append(servers, haproxyServer{sftp: g.sftpAddr, http: g.httpAddr})
	}
	h := startHAProxyOver(t, servers)

	files := make([]*chaosFile, clients*perClient)
	for i := range files {
		data := make([]byte, 4<<10+rand.IntN(252<<10))
		rand.NewChaCha8([32]byte{byte(i), byte(i >> 8), 'c'}).Read(data)
		sum := sha256.Sum256(data)
		files[i] = &chaosFile{path: fmt.Sprintf("/c%02d/f%03d.bin", i/perClient, i%perClient), data: data, sha: hex.EncodeToString(sum[:])}
	}
	var wg sync.WaitGroup
	var uploaded atomic.Int64
	for ci := range clients {
		wg.Go(func() { chaosClient(h.v2, c.key, files[ci*perClient:(ci+1)*perClient], &uploaded) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	// A kill each time another quarter of the files is in, and at least
	// every 10 s, so that a fast machine sees as many as a slow one.
	kills, lastKill, start := 0, time.Now(), time.Now()
	quarter := int64(len(files) / 4)
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		case <-time.After(100 * time.Millisecond):
		}
		if finished || uploaded.Load() < quarter*int64(kills+1) && time.Since(lastKill) < 10*time.Second {
			continue
		}
		if time.Since(start) > 4*time.Minute {
			t.Fatal("the clients did not finish within 4 minutes")
		}
		g := nodes[rand.IntN(len(nodes))]
		g.kill()
		g.start()
		kills, lastKill = kills+1, time.Now()
	}
	t.Logf("1,000 uploads by %d clients in %s, %d nodes killed -9 meanwhile", clients, time.Since(start).Round(time.Second), kills)
	if kills < 3 {
		t.Errorf("only %d kills happened during the uploads; the test proves little", kills)
	}
	checkChaos(t, nodes[0], c, files)
}

// chaosClient uploads files through the balancer at addr, one session for
// as long as it lasts, retrying each failed upload on a new one.
func chaosClient(addr string, key clientKey, files []*chaosFile, uploaded *atomic.Int64) {
	var c *sftp.Client
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for _, f := range files {
		for f.attempts < 20 && !f.ok {
			f.attempts++
			if c == nil {
				conn, err := sshDialAddr(addr, "acme", key)
				if err == nil {
					c, err = sftp.NewClient(conn)
				}
				if err != nil {
					f.lastErr = err
					time.Sleep(200 * time.Millisecond)
					continue
				}
			}
			if f.lastErr = chaosPut(c, f); f.lastErr != nil {
				c.Close()
				c = nil
				continue
			}
			f.ok = true
			uploaded.Add(1)
		}
	}
}

func chaosPut(c *sftp.Client, f *chaosFile) error {
	if err := c.MkdirAll(f.path[:4]); err != nil {
		return err
	}
	w, err := c.Create(f.path)
	if err != nil {
		return err
	}
	if _, err := w.ReadFrom(bytes.NewReader(f.data)); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

func checkChaos(t *testing.T, g *gateway, c *cluster, files []*chaosFile) {
	t.Helper()
	trs := g.waitRows(t, 3*time.Minute, "every upload to settle", func(trs []ledger.Transfer) bool {
		for _, tr := range trs {
			if !g.rests(tr) {
				return false
			}
		}
		return true
	})
	byPath := map[string][]ledger.Transfer{}
	for _, tr := range trs {
		byPath[tr.Path] = append(byPath[tr.Path], tr)
	}
	delivered := objects(t, c.dest)
	retried := 0
	for _, f := range files {
		if f.attempts > 1 {
			retried++
		}
		if !f.ok {
			t.Errorf("%s: the client gave up after %d attempts: %v", f.path, f.attempts, f.lastErr)
			continue
		}
		n := 0
		for _, tr := range byPath[f.path] {
			if tr.State == ledger.Delivered {
				n++
				if tr.SHA256 != f.sha {
					t.Errorf("%s: delivered with sha256 %.12s, want %.12s", f.path, tr.SHA256, f.sha)
				}
			}
		}
		if n == 0 || n > f.attempts {
			t.Errorf("%s: %d deliveries for %d attempts, the last one told it succeeded:\n%s", f.path, n, f.attempts, g.diagnosis(byPath[f.path]))
		}
		if got := delivered[f.path[1:]]; got != f.sha {
			t.Errorf("%s: the destination holds sha256 %q, want %.12s", f.path, got, f.sha)
		}
	}
	for _, tr := range trs {
		if tr.State == ledger.Receiving {
			t.Errorf("transfer %s (%s) is left receiving", tr.ID, tr.Path)
		}
	}
	t.Logf("%d transfers for %d files; %d files needed more than one attempt", len(trs), len(files), retried)
	g.auditVerifies(t)
}
