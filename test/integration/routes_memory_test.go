package integration

import (
	"crypto/cipher"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/zstd"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/testpeer"
)

// TestRouteLargeToNginxFlatRSS: envelope-encrypted objects of 256 MiB and
// 1 GiB on versitygw go through decrypt → zstd to nginx (mutual TLS), in
// one chunked PUT each whose length nobody knows until its end. nginx's
// files decompress to the plaintext; airlock's peak RSS (VmHWM) stays
// under 128 MiB and grows by at most 40 MiB from the small object to the
// large one (as the push's TestPushLargeObjectFlatRSS, whose comment says
// where the peak comes from). The bench's route scenario does it at 5 GB.
func TestRouteLargeToNginxFlatRSS(t *testing.T) {
	t.Parallel()
	const (
		small, large = 256 << 20, 1 << 30
		ceiling      = 128 << 20
		growth       = 40 << 20
	)
	s3srv := startVersity(t, "src")
	ca := testpeer.NewCA(t, "partner")
	ngx := testpeer.StartNginx(t, ca.Server("receiver"), ca.CertFile)
	client := ca.Client("airlock")
	g := newGateway(t, gatewayOpts{env: s3srv.Env(), extra: fmt.Sprintf("watch:\n  every: 300ms\nkeys:\n  dks: %q\n", dksURL)})
	writeFile(t, filepath.Join(g.dir, "suppliers", ".keep"), "")
	writeFile(t, filepath.Join(g.dir, "routes", "big.yaml"), fmt.Sprintf(
		"name: big\nsource: %q\ndecrypt: true\ncompress: zstd\ndestination: %q\ntls: {cert: %q, key: %q, ca: %q}\n",
		testpeer.S3URL(s3srv.Addr, "src", "big/"), ngx.URL+"DA/", client.Cert, client.Key, ca.CertFile))
	g.start()
	idle := vmHWM(t, g.proc.Pid())

	peak := map[int64]int64{}
	for i, size := range []int64{small, large} {
		name := fmt.Sprintf("f%d.bin", i)
		plainSHA := putSealed(t, s3srv, "big/"+name, size, uint64(i))
		start := time.Now()
		var tr ledger.Transfer
		eventually(t, 5*time.Minute, name+" to be delivered", func() bool {
			for _, row := range g.egressRows(t, "big") {
				if row.Path == "/"+name {
					tr = row
				}
			}
			if tr.State == ledger.Failed {
				t.Fatalf("%s failed: %s", name, tr.Error)
			}
			return tr.State == ledger.Delivered
		})
		peak[size] = vmHWM(t, g.proc.Pid())
		t.Logf("%d MiB decrypted, compressed and sent in %s; VmHWM %.1f MiB", size>>20, time.Since(start).Round(time.Millisecond), float64(peak[size])/(1<<20))
		if got := zstdSHA256(t, filepath.Join(ngx.Root, "DA", name)); got != plainSHA {
			t.Errorf("%s: nginx's file decompresses to sha256 %s; want the plaintext's %s", name, got, plainSHA)
		}
	}
	t.Logf("VmHWM %.1f MiB idle", float64(idle)/(1<<20))
	if peak[large] > ceiling {
		t.Errorf("peak RSS %.1f MiB after a %d MiB send; want at most %d MiB", float64(peak[large])/(1<<20), large>>20, ceiling>>20)
	}
	if d := peak[large] - peak[small]; d > growth {
		t.Errorf("peak RSS grew by %.1f MiB from %d MiB to %d MiB; want at most %d MiB: memory grows with the object", float64(d)/(1<<20), small>>20, large>>20, growth>>20)
	}
	g.auditVerifies(t)
}

// putSealed puts key on s3srv's bucket src: size pseudo-random bytes (from
// seed), envelope-encrypted as the egress pipelines write them. It returns
// the plaintext's sha256. The ciphertext goes through a file, which the
// SDK reads twice (to sign it, then to send it).
func putSealed(t *testing.T, s3srv *s3Server, key string, size int64, seed uint64) string {
	t.Helper()
	stream, meta, _ := newDataKey(t)
	tmp, err := os.CreateTemp(t.TempDir(), "sealed-*")
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Close()
	h := sha256.New()
	plain := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{byte(seed)}), size), h)
	if _, err := io.Copy(cipher.StreamWriter{S: stream, W: tmp}, plain); err != nil {
		t.Fatal(err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if _, err := s3Client(t, s3srv.Versity).PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String("src"), Key: aws.String(key),
		Body: tmp, ContentLength: aws.Int64(size), Metadata: meta}); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// zstdSHA256 is the sha256 of the zstd file at p, decompressed.
func zstdSHA256(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec, err := zstd.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	h := sha256.New()
	if _, err := io.Copy(h, dec); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
