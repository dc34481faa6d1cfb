package integration

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Memory of a push: an object is streamed from the export area to the
// target, never held whole.

// TestPushLargeObjectFlatRSS: a 1 GiB object pushed from a local export
// area to a dataset's bucket on versitygw (a streamed copy: the two stores
// share no S3 endpoint, so no server-side copy) arrives with its sha256,
// with airlock's peak RSS (VmHWM) under 128 MiB and no more than 24 MiB
// above its peak after a 64 MiB object. 64 MiB already fills the copy's
// pipeline (8 MiB parts, one filling while one is sent); what grows with
// the size beyond it would show at 16 times the size: buffering even one
// part in 64 of the object would add 16 MiB more, and buffering it whole
// would cross 128 MiB. The bench's scenario 8 does the same at 5 GB.
func TestPushLargeObjectFlatRSS(t *testing.T) {
	t.Parallel()
	const (
		small, large = 64 << 20, 1 << 30
		ceiling      = 128 << 20
		growth       = 24 << 20
	)
	exports := t.TempDir()
	target := startVersity(t, "target")
	g := startPushGateway(t, gatewayOpts{env: target.Env()}, exports, dataset{name: "proj", bucket: target.url("target")})
	idle := vmHWM(t, g.proc.Pid())

	began := time.Now()
	sent := map[int64]int64{} // size → VmHWM once it was sent
	for i, size := range []int64{small, large} {
		key := fmt.Sprintf("proj/big/f%d.bin", i)
		want := exported{key: writeExport(t, exports, key, size, uint64(i))}
		start := time.Now()
		trs := g.waitSent(t, "proj", want, 3*time.Minute)
		sent[size] = vmHWM(t, g.proc.Pid())
		t.Logf("%d MiB sent in %s (%.0f MB/s from the rename); VmHWM %.1f MiB",
			size>>20, time.Since(start).Round(time.Millisecond), float64(size)/1e6/time.Since(start).Seconds(), float64(sent[size])/(1<<20))
		rel := strings.TrimPrefix(key, "proj/")
		if got := fileSHA256(t, filepath.Join(target.Root, "target", filepath.FromSlash(rel))); got != want[key] {
			t.Errorf("%s: target holds sha256 %s; want %s", key, got, want[key])
		}
		for _, tr := range trs {
			if tr.Path == "/"+rel && (tr.Size != size || tr.SHA256 != want[key]) {
				t.Errorf("%s: ledger records %d bytes, sha256 %s; want %d, %s", key, tr.Size, tr.SHA256, size, want[key])
			}
		}
		eventually(t, 30*time.Second, key+" to leave the export area", func() bool {
			_, err := os.Stat(filepath.Join(exports, filepath.FromSlash(key)))
			return os.IsNotExist(err)
		})
	}
	t.Logf("VmHWM %.1f MiB idle, %.1f MiB after %d MiB, %.1f MiB after %d MiB (%s in all)",
		float64(idle)/(1<<20), float64(sent[small])/(1<<20), small>>20, float64(sent[large])/(1<<20), large>>20, time.Since(began).Round(time.Second))
	if sent[large] > ceiling {
		t.Errorf("peak RSS %.1f MiB after a %d MiB push; want at most %d MiB", float64(sent[large])/(1<<20), large>>20, ceiling>>20)
	}
	if d := sent[large] - sent[small]; d > growth {
		t.Errorf("peak RSS grew by %.1f MiB from a %d MiB push to a %d MiB one; want at most %d MiB: memory grows with the object",
			float64(d)/(1<<20), small>>20, large>>20, growth>>20)
	}
	g.auditVerifies(t)
}

// writeExport writes size pseudo-random bytes (from seed) to key of the
// export directory and returns their sha256. The file is written beside
// the export area and renamed into it, so that it appears whole.
func writeExport(t *testing.T, exports, key string, size int64, seed uint64) string {
	t.Helper()
	tmp, err := os.CreateTemp(filepath.Dir(exports), "export-*.tmp")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	src := io.LimitReader(rand.NewChaCha8([32]byte{byte(seed)}), size)
	if _, err := io.Copy(io.MultiWriter(tmp, h), src); err != nil {
		t.Fatal(err)
	}
	if err := tmp.Close(); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(exports, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// vmHWM is the peak resident set (VmHWM) of process pid, in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}
