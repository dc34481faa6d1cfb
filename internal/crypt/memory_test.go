package crypt

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"io"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"
)

// keystream is size bytes of AES-CTR keystream under key: random-looking,
// incompressible, and never held in memory as a whole.
func keystream(t testing.TB, key, iv []byte, size int64) io.Reader {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	return cipher.StreamReader{S: cipher.NewCTR(block, iv), R: io.LimitReader(zeros{}, size)}
}

// envelopeStream is an envelope-encrypted body of size incompressible
// bytes, generated as it is read, and its metadata.
func envelopeStream(t testing.TB, size int64) (io.Reader, Steps) {
	t.Helper()
	keys := newKeeper(t)
	dataKey, iv := randBytes(t, 32), randBytes(t, aes.BlockSize)
	wrapped, err := keys.Encrypt(t.Context(), dataKey)
	if err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(dataKey)
	if err != nil {
		t.Fatal(err)
	}
	plain := keystream(t, randBytes(t, 32), randBytes(t, aes.BlockSize), size)
	body := cipher.StreamReader{S: cipher.NewCTR(block, iv), R: plain}
	return body, Steps{Decrypt: true, Meta: envelopeMeta("dks-1", wrapped, iv), Keys: keys}
}

// TestPipeMemoryFlat streams 200 MiB through decrypt → zstd → age and
// bounds the heap's growth meanwhile: a transform that buffered the file
// would grow it by the file's size. Not parallel, so that no other test's
// allocations count.
func TestPipeMemoryFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 200 MiB")
	}
	const size = 200 << 20
	const bound = 48 << 20
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	src, steps := envelopeStream(t, size)
	steps.Compress = CompressZstd
	steps.Encrypt = EncryptSpec{Age: []string{id.Recipient().String()}}

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	p, err := Pipe(t.Context(), src, steps)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	n, err := io.Copy(io.Discard, p)
	close(stop)
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	in, out, err := p.Sums()
	if err != nil {
		t.Fatal(err)
	}
	if in.Size != size || out.Size != n || n < size {
		t.Fatalf("in %d bytes, out %d (read %d): want %d in, at least as many out", in.Size, out.Size, n, size)
	}
	growth := int64(peak.Load()) - int64(before.HeapInuse)
	t.Logf("%d MiB through decrypt → zstd → age: heap grew by at most %.1f MiB", size>>20, float64(growth)/(1<<20))
	if growth > bound {
		t.Fatalf("heap grew by %d MiB streaming %d MiB, bound %d MiB", growth>>20, size>>20, bound>>20)
	}
}

// BenchmarkTransforms measures each transform alone and the usual chain,
// on incompressible data (the worst case for the compressors), from a
// body in memory; every case includes Pipe's two sha256s (passthrough is
// just those).
func BenchmarkTransforms(b *testing.B) {
	const size = 16 << 20
	src, env := envelopeStream(b, size)
	body, err := io.ReadAll(src)
	if err != nil {
		b.Fatal(err)
	}
	x, _, pgpPub, _ := recipients(b)
	ageSpec := EncryptSpec{Age: []string{x.Recipient().String()}}
	for _, bc := range []struct {
		name  string
		steps Steps
	}{
		{"passthrough", Steps{}},
		{"decrypt", Steps{Decrypt: true}},
		{"gzip", Steps{Compress: CompressGzip}},
		{"zstd", Steps{Compress: CompressZstd}},
		{"age", Steps{Encrypt: ageSpec}},
		{"pgp", Steps{Encrypt: EncryptSpec{PGP: pgpPub}}},
		{"decrypt+zstd+age", Steps{Decrypt: true, Compress: CompressZstd, Encrypt: ageSpec}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				s := bc.steps
				s.Meta, s.Keys = env.Meta, env.Keys
				p, err := Pipe(b.Context(), bytes.NewReader(body), s)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, p); err != nil {
					b.Fatal(err)
				}
				p.Close()
			}
		})
	}
}
