package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/airlock-gw/airlock/internal/crypt"
	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/storage"
	"github.com/airlock-gw/airlock/internal/testpeer"
)

// Scenario 9's routes, both from versitygw to nginx over mutual TLS: one
// decrypts envelope-encrypted objects and compresses them (zstd), the
// other sends flag batches of small files as they are.
const (
	bigRoute   = "bench_decrypt"
	batchRoute = "bench_batch"
	// benchDKS is the data key service of the bench's envelopes.
	benchDKS = "base64key://smGbjm71Nxd1Ig5FS0wj9SlbzAIrnolCz9bQQ6uAhl4="
)

// routeResult is scenario 9, airlock only.
type routeResult struct {
	sizes   []int64
	mbps    map[int64][]float64 // first event → delivered: hash the source, then decrypt, compress, send
	rss     map[int64][]float64 // MiB
	batchN  int
	batchFS []float64 // files per second, flag written → batch delivered (manifest sent)
	errors  int
	notes   []string
	skipped string
}

// routeRuns is how many times each object is sent: the scenario moves
// 2 × (s3-small + s3-large) per run, through two CPU-bound transforms.
const routeRuns = 2

func (b *bench) routeStep(ctx context.Context) (*routeResult, error) {
	switch {
	case b.opts.noS3:
		return &routeResult{skipped: "skipped (-no-s3)"}, nil
	case !b.opts.selected("route"):
		return &routeResult{skipped: "not selected (-only)"}, nil
	case b.tools.nginx == "":
		return &routeResult{skipped: "skipped: no nginx"}, nil
	}
	if err := b.checkSpace(2*(b.opts.s3Small+b.opts.s3Large)+1<<30, "the route scenario"); err != nil {
		logf("route scenario skipped: %v", err)
		return &routeResult{skipped: "skipped: " + err.Error()}, nil
	}
	logf("scenario: routes to nginx (mutual TLS): %s and %s decrypted and compressed, and a flag batch (airlock only)",
		humanSize(b.opts.s3Small), humanSize(b.opts.s3Large))
	return b.scenarioRoute(ctx)
}

// routeBench is what the scenario's runs share.
type routeBench struct {
	tree  *airlockTree
	vg    *versity
	src   *storage.Store // bucket src on vg
	inbox string         // nginx's directory the routes deliver into
}

func (b *bench) scenarioRoute(ctx context.Context) (*routeResult, error) {
	res := &routeResult{sizes: []int64{b.opts.s3Small, b.opts.s3Large}, batchN: 1000,
		mbps: map[int64][]float64{}, rss: map[int64][]float64{}}
	dir := filepath.Join(b.dir, "routebench")
	rb, stop, err := b.routePeers(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer stop()
	for run := 1; run <= min(b.opts.runs, routeRuns); run++ {
		for _, size := range alternate(run, res.sizes[0], res.sizes[1]) {
			if err := b.routeRun(ctx, rb, size, run, res); err != nil {
				return nil, err
			}
		}
		if err := b.batchRun(ctx, rb, run, res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// routePeers starts versitygw and nginx, and writes an airlock tree with
// the two routes.
func (b *bench) routePeers(ctx context.Context, dir string) (*routeBench, func(), error) {
	vg, err := startVersity(b.tools, dir, "src")
	if err != nil {
		return nil, nil, err
	}
	ngx, inbox, tlsLine, err := startNginx(b.tools, filepath.Join(dir, "nginx"))
	if err != nil {
		vg.stop()
		return nil, nil, err
	}
	stop := func() { ngx.stop(); vg.stop() }
	rb := &routeBench{vg: vg, inbox: inbox}
	rb.tree, err = writeAirlockTree(filepath.Join(dir, "airlock"), treeSpec{env: vg.env(),
		extra: fmt.Sprintf("watch:\n  every: 250ms\nkeys:\n  dks: %q\n", benchDKS)}, b.egressDir, b.client, b.dlClient)
	if err == nil {
		src := func(prefix string) string {
			return fmt.Sprintf("s3://src/%s?endpoint=http://%s&use_path_style=true&region=us-east-1", prefix, vg.addr)
		}
		err = writeFiles(map[string]string{
			filepath.Join(rb.tree.dir, "routes", bigRoute+".yaml"): fmt.Sprintf("name: %s\nsource: %q\ndecrypt: true\ncompress: zstd\ndestination: %q\n%s",
				bigRoute, src("big/"), ngx.url+"big/", tlsLine),
			filepath.Join(rb.tree.dir, "routes", batchRoute+".yaml"): fmt.Sprintf("name: %s\nsource: %q\nflag: pipeline_success.flag\ndestination: %q\n%s",
				batchRoute, src("batch/"), ngx.url+"batch/", tlsLine),
		})
	}
	if err == nil {
		// The bench writes the sources through airlock's own store code.
		for _, kv := range vg.env() {
			k, v, _ := strings.Cut(kv, "=")
			err = errors.Join(err, os.Setenv(k, v))
		}
		if err == nil {
			rb.src, err = storage.Open(ctx, vg.url("src"))
		}
	}
	if err != nil {
		stop()
		return nil, nil, err
	}
	return rb, stop, nil
}

// nginxPeer is nginx taking PUT files over mutual TLS.
type nginxPeer struct {
	*proc
	url string
}

// startNginx starts nginx in dir with a CA of its own; it returns the
// directory files arrive in and the route's tls: line for airlock's
// client certificate.
func startNginx(tools *toolset, dir string) (*nginxPeer, string, string, error) {
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, "", "", err
	}
	ca, err := testpeer.MakeCA(dir, "bench")
	if err != nil {
		return nil, "", "", err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, "", "", err
	}
	if err := testpeer.WriteNginxConf(dir, addr, root, ca.Server("receiver"), ca.CertFile); err != nil {
		return nil, "", "", err
	}
	p, err := startProc("nginx", filepath.Join(dir, "stderr.log"), nil, tools.nginx,
		"-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log"))
	if err != nil {
		return nil, "", "", err
	}
	if err := p.waitTCP(addr); err != nil {
		p.stop()
		return nil, "", "", err
	}
	client := ca.Client("airlock")
	tlsLine := fmt.Sprintf("tls: {cert: %q, key: %q, ca: %q}\n", client.Cert, client.Key, ca.CertFile)
	return &nginxPeer{proc: p, url: "https://" + addr + "/"}, root, tlsLine, nil
}

// routeRun seals an object of size in the source, lets a fresh airlock
// send it, and checks what nginx got decompresses to the plaintext.
func (b *bench) routeRun(ctx context.Context, rb *routeBench, size int64, run int, res *routeResult) error {
	name := fmt.Sprintf("obj-%d-%d.bin", size, run)
	logf("  sealing a %s object", humanSize(size))
	plainSHA, err := seal(ctx, rb.src, "big/"+name, size, uint64(run))
	if err != nil {
		return err
	}
	srv, err := startAirlock(b.tools, rb.tree)
	if err != nil {
		return err
	}
	tr, err := rb.tree.waitDelivered(ctx, b.tools.airlock, bigRoute, "/"+name, b.opts.pipelineTimeout)
	var p pushed
	if err == nil {
		p, err = b.measured(ctx, rb.tree, srv, tr)
	}
	if err == nil {
		if got, zerr := zstdSHA256(filepath.Join(rb.inbox, "big", name)); zerr != nil || got != plainSHA {
			err = fmt.Errorf("nginx's file decompresses to sha256 %s (%v); want %s", got, zerr, plainSHA)
		}
	}
	srv.stop()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		res.errors++
		res.notes = append(res.notes, fmt.Sprintf("9. %s: %v", humanSize(size), err))
		logf("  run %d %s FAILED: %v\n%s", run, humanSize(size), err, lastLines(srv.tail(), 10))
	} else {
		v := float64(size) / mb / p.whole.Seconds()
		res.mbps[size] = append(res.mbps[size], v)
		res.rss[size] = append(res.rss[size], float64(p.rss)/(1<<20))
		logf("  run %d %-7s %8.1f MB/s (%s), peak RSS %.1f MiB", run, humanSize(size), v, p.whole.Round(time.Millisecond), float64(p.rss)/(1<<20))
	}
	return errors.Join(rb.src.Delete(ctx, "big/"+name), os.Remove(filepath.Join(rb.inbox, "big", name)))
}

// seal writes key as size pseudo-random bytes (from seed), envelope-
// encrypted as the egress pipelines write them (AES-256-CTR under a data
// key wrapped by benchDKS, in the object's metadata), and returns the
// plaintext's sha256.
func seal(ctx context.Context, dst *storage.Store, key string, size int64, seed uint64) (string, error) {
	dataKey, iv := make([]byte, 32), make([]byte, 16)
	rand.Read(dataKey)
	rand.Read(iv)
	keeper, err := crypt.OpenKeys(ctx, benchDKS)
	if err != nil {
		return "", err
	}
	defer func() { _ = keeper.Close() }() // a local key: nothing to flush
	wrapped, err := keeper.Encrypt(ctx, dataKey)
	if err != nil {
		return "", err
	}
	block, err := aes.NewCipher(dataKey)
	if err != nil {
		return "", err
	}
	meta := map[string]string{crypt.MetaKeyID: "bench", crypt.MetaWrappedKey: base64.StdEncoding.EncodeToString(wrapped),
		crypt.MetaIV: base64.StdEncoding.EncodeToString(iv)}
	st, err := dst.StageWith(ctx, key, size, storage.WriteOptions{Metadata: meta})
	if err != nil {
		return "", err
	}
	h := sha256.New()
	plain := io.TeeReader(io.LimitReader(mrand.NewChaCha8([32]byte{byte(seed), 9}), size), h)
	if _, err := io.Copy(cipher.StreamWriter{S: cipher.NewCTR(block, iv), W: st}, plain); err != nil {
		st.Abort()
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), st.Commit()
}

func zstdSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	dec, err := zstd.NewReader(f)
	if err != nil {
		return "", err
	}
	defer dec.Close()
	h := sha256.New()
	if _, err := io.Copy(h, dec); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// batchRun writes batchN files of 64 KiB and the flag while airlock
// runs, and measures from the flag's write to the batch's manifest sent.
func (b *bench) batchRun(ctx context.Context, rb *routeBench, run int, res *routeResult) error {
	srv, err := startAirlock(b.tools, rb.tree)
	if err != nil {
		return err
	}
	defer srv.stop()
	body := make([]byte, 64<<10)
	for i := range res.batchN {
		_, _ = mrand.NewChaCha8([32]byte{byte(i), byte(i >> 8), byte(run)}).Read(body) // never fails
		if err := putSmall(ctx, rb.src, fmt.Sprintf("batch/d%d/f%04d.bin", i%10, i), body); err != nil {
			return err
		}
	}
	flagged := time.Now()
	if err := putSmall(ctx, rb.src, "batch/pipeline_success.flag", nil); err != nil {
		return err
	}
	bt, err := rb.tree.waitBatch(ctx, b.tools.airlock, run, b.opts.pipelineTimeout)
	if err != nil {
		res.errors++
		res.notes = append(res.notes, fmt.Sprintf("9. batch run %d: %v", run, err))
		logf("  batch run %d FAILED: %v\n%s", run, err, lastLines(srv.tail(), 10))
		return nil
	}
	fs := float64(res.batchN) / bt.SettledAt.Sub(flagged).Seconds()
	res.batchFS = append(res.batchFS, fs)
	logf("  batch run %d: %d files in %s: %.0f files/s", run, res.batchN, bt.SettledAt.Sub(flagged).Round(time.Millisecond), fs)
	return nil
}

func putSmall(ctx context.Context, dst *storage.Store, key string, body []byte) error {
	st, err := dst.Stage(ctx, key, int64(len(body)))
	if err != nil {
		return err
	}
	if _, err := st.Write(body); err != nil {
		st.Abort()
		return err
	}
	return st.Commit()
}

// routeRows are scenario 9: the big route's throughput and peak RSS at
// each size, and the batch route's files per second.
func (rep *report) routeRows() []row {
	r := rep.route
	if r == nil || r.skipped != "" {
		why := "skipped"
		if r != nil {
			why = r.skipped
		}
		return []row{{"9. routes: decrypt → zstd → HTTPS (nginx, mutual TLS), and a flag batch", "—", why, "—", "RSS ≤ 128 MiB", "—"}}
	}
	sm, lg := humanSize(r.sizes[0]), humanSize(r.sizes[1])
	rlarge := median(r.rss[r.sizes[1]])
	errNote := ""
	if r.errors > 0 {
		errNote = fmt.Sprintf(" (%d runs failed)", r.errors)
	}
	return []row{
		{"9a. route decrypt → zstd → HTTPS: " + sm + " (MB/s)", "—", cell(r.mbps[r.sizes[0]], 0) + errNote, "—", "—", "—"},
		{"9b. route decrypt → zstd → HTTPS: " + lg + " (MB/s)", "—", cell(r.mbps[r.sizes[1]], 0), "—", "—", "—"},
		{"9c. route: airlock peak RSS, " + sm + " (MiB)", "—", cell(r.rss[r.sizes[0]], 1), "—", "—", "—"},
		{"9d. route: airlock peak RSS, " + lg + " (MiB)", "—", cell(r.rss[r.sizes[1]], 1), "—", "≤ 128 MiB", yesNo(rlarge <= 128 && r.errors == 0)},
		{fmt.Sprintf("9e. flag batch of %d × 64 KiB to HTTPS (files/s)", r.batchN), "—", cell(r.batchFS, 0), "—", "—", "—"},
	}
}

// waitBatch polls the ledger until the route's n-th batch is delivered.
func (t *airlockTree) waitBatch(ctx context.Context, airlockBin string, n int, timeout time.Duration) (ledger.Batch, error) {
	deadline := time.Now().Add(timeout)
	for {
		var bs []ledger.Batch
		if err := t.cli(ctx, airlockBin, &bs, "batches", "list", "--route", batchRoute); err != nil {
			return ledger.Batch{}, err
		}
		if len(bs) >= n && bs[0].State == ledger.BatchDelivered && bs[0].SettledAt != nil {
			return bs[0], nil
		}
		if time.Now().After(deadline) {
			return ledger.Batch{}, fmt.Errorf("batch %d not delivered after %s", n, timeout)
		}
		select {
		case <-ctx.Done():
			return ledger.Batch{}, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
