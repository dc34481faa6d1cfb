package crypt

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// decompress undoes Compress.
func decompress(t testing.TB, r io.Reader, alg string) io.Reader {
	t.Helper()
	switch alg {
	case CompressGzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		return zr
	case CompressZstd:
		zr, err := zstd.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(zr.Close)
		return zr
	}
	return r
}

func TestCompress(t *testing.T) {
	t.Parallel()
	plain := bytes.Repeat([]byte("compressible line of a csv file\n"), 50_000)
	for _, tc := range []struct {
		alg     string
		smaller bool
	}{{"", false}, {CompressNone, false}, {CompressGzip, true}, {CompressZstd, true}} {
		t.Run("alg="+tc.alg, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			w, err := Compress(&buf, tc.alg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(plain); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if tc.smaller != (buf.Len() < len(plain)/10) {
				t.Errorf("%s: %d bytes out of %d", tc.alg, buf.Len(), len(plain))
			}
			got, err := io.ReadAll(decompress(t, &buf, tc.alg))
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("round trip: %d bytes, %v", len(got), err)
			}
		})
	}
	if _, err := Compress(io.Discard, "brotli"); err == nil || !strings.Contains(err.Error(), `"brotli"`) {
		t.Errorf("unknown algorithm: %v", err)
	}
}

// pgpKey is a fresh OpenPGP key: the armored public key, and the entity
// with its private key to decrypt with.
func pgpKey(t testing.TB) ([]byte, openpgp.EntityList) {
	t.Helper()
	e, err := openpgp.NewEntity("recipient", "", "recipient@example.org", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	aw, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(aw); err != nil {
		t.Fatal(err)
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), openpgp.EntityList{e}
}

// ageOpener and pgpOpener decrypt what Encrypt wrote for their keys.
type opener func(t testing.TB, r io.Reader) io.Reader

func ageOpener(ids ...age.Identity) opener {
	return func(t testing.TB, r io.Reader) io.Reader {
		t.Helper()
		pr, err := age.Decrypt(r, ids...)
		if err != nil {
			t.Fatalf("age decrypt: %v", err)
		}
		return pr
	}
}

func pgpOpener(ring openpgp.EntityList) opener {
	return func(t testing.TB, r io.Reader) io.Reader {
		t.Helper()
		md, err := openpgp.ReadMessage(r, ring, nil, nil)
		if err != nil {
			t.Fatalf("pgp decrypt: %v", err)
		}
		return md.UnverifiedBody
	}
}

// recipients: an age X25519 and a hybrid identity, and an OpenPGP key.
func recipients(t testing.TB) (x25519 *age.X25519Identity, hybrid *age.HybridIdentity, pgpPub []byte, pgpRing openpgp.EntityList) {
	t.Helper()
	x25519, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	hybrid, err = age.GenerateHybridIdentity()
	if err != nil {
		t.Fatal(err)
	}
	pgpPub, pgpRing = pgpKey(t)
	return x25519, hybrid, pgpPub, pgpRing
}

func TestEncrypt(t *testing.T) {
	t.Parallel()
	x, h, pgpPub, pgpRing := recipients(t)
	other, _ := age.GenerateX25519Identity()
	plain := []byte(strings.Repeat("secret rows\n", 10_000))
	for _, tc := range []struct {
		name string
		spec EncryptSpec
		open opener
	}{
		{"age x25519", EncryptSpec{Age: []string{x.Recipient().String()}}, ageOpener(x)},
		{"age second of two", EncryptSpec{Age: []string{other.Recipient().String(), x.Recipient().String()}}, ageOpener(x)},
		{"age hybrid", EncryptSpec{Age: []string{h.Recipient().String()}}, ageOpener(h)},
		{"pgp", EncryptSpec{PGP: pgpPub}, pgpOpener(pgpRing)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			w, err := Encrypt(&buf, tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(plain); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(buf.Bytes(), []byte("secret rows")) {
				t.Fatal("the plaintext shows in the output")
			}
			got, err := io.ReadAll(tc.open(t, &buf))
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("decrypted %d bytes, %v", len(got), err)
			}
		})
	}
}

func TestEncryptRefuses(t *testing.T) {
	t.Parallel()
	x, _, pgpPub, _ := recipients(t)
	for _, tc := range []struct {
		name string
		spec EncryptSpec
		want string
	}{
		{"nothing", EncryptSpec{}, "no recipients"},
		{"both", EncryptSpec{Age: []string{x.Recipient().String()}, PGP: pgpPub}, "both given"},
		{"age identity, not recipient", EncryptSpec{Age: []string{x.String()}}, "age recipient 1"},
		{"age garbage second", EncryptSpec{Age: []string{x.Recipient().String(), "age1nope"}}, "age recipient 2"},
		{"pgp garbage", EncryptSpec{PGP: []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnope\n")}, "pgp key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.spec.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want an error saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "AGE-SECRET-KEY") {
				t.Errorf("the error quotes a secret key: %v", err)
			}
		})
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestPipe(t *testing.T) {
	t.Parallel()
	keys := newKeeper(t)
	x, _, pgpPub, pgpRing := recipients(t)
	plain := bytes.Repeat([]byte("id,name,amount\n1,acme,12.50\n"), 40_000)
	body, meta := seal(t, keys, 32, plain)
	for _, tc := range []struct {
		name  string
		steps Steps
		open  opener // nil: not encrypted
	}{
		{"nothing", Steps{}, nil},
		{"decrypt", Steps{Decrypt: true}, nil},
		{"decrypt gzip", Steps{Decrypt: true, Compress: CompressGzip}, nil},
		{"decrypt zstd age", Steps{Decrypt: true, Compress: CompressZstd, Encrypt: EncryptSpec{Age: []string{x.Recipient().String()}}}, ageOpener(x)},
		{"decrypt gzip pgp", Steps{Decrypt: true, Compress: CompressGzip, Encrypt: EncryptSpec{PGP: pgpPub}}, pgpOpener(pgpRing)},
		{"zstd only", Steps{Compress: CompressZstd}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := tc.steps
			s.Meta, s.Keys = meta, keys
			p, err := Pipe(t.Context(), bytes.NewReader(body), s)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			out, err := io.ReadAll(p)
			if err != nil {
				t.Fatal(err)
			}
			in, outSum, err := p.Sums()
			if err != nil {
				t.Fatal(err)
			}
			if in != (Sum{SHA256: sha(body), Size: int64(len(body))}) {
				t.Errorf("before: %+v, want the source's sha256 and size", in)
			}
			if outSum != (Sum{SHA256: sha(out), Size: int64(len(out))}) {
				t.Errorf("after: %+v, want the output's sha256 and size", outSum)
			}
			var r io.Reader = bytes.NewReader(out)
			if tc.open != nil {
				r = tc.open(t, r)
			}
			got, err := io.ReadAll(decompress(t, r, s.Compress))
			if err != nil {
				t.Fatal(err)
			}
			want := plain
			if !s.Decrypt {
				want = body
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("the output undone is %d bytes, not the %d expected", len(got), len(want))
			}
		})
	}
}

// A refused envelope, algorithm or recipient fails Pipe itself: nothing
// is ever read from the result.
func TestPipeRefusesBeforeFirstByte(t *testing.T) {
	t.Parallel()
	keys := newKeeper(t)
	body, meta := seal(t, keys, 32, []byte("plaintext"))
	partial := map[string]string{MetaKeyID: meta[MetaKeyID], MetaWrappedKey: meta[MetaWrappedKey]}
	for _, tc := range []struct {
		name  string
		steps Steps
		want  string
	}{
		{"partial envelope", Steps{Decrypt: true, Meta: partial, Keys: keys}, "iv missing"},
		{"wrong key service", Steps{Decrypt: true, Meta: meta, Keys: newKeeper(t)}, "unwrap data key"},
		{"unknown compression", Steps{Compress: "lz4"}, `"lz4"`},
		{"bad recipient", Steps{Encrypt: EncryptSpec{Age: []string{"age1bad"}}}, "age recipient 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			src := &countingReader{r: bytes.NewReader(body)}
			p, err := Pipe(t.Context(), src, tc.steps)
			if err == nil {
				p.Close()
				t.Fatal("Pipe accepted it")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if src.n != 0 {
				t.Errorf("%d bytes of the source were read", src.n)
			}
		})
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += n
	return n, err
}

// A source that fails midway fails the reader, not just ends it short;
// Sums reports the failure.
func TestPipeSourceError(t *testing.T) {
	t.Parallel()
	broken := errors.New("connection reset")
	src := io.MultiReader(bytes.NewReader(make([]byte, 300<<10)), errReader{broken})
	p, err := Pipe(t.Context(), src, Steps{Compress: CompressZstd})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := io.Copy(io.Discard, p); !errors.Is(err, broken) {
		t.Fatalf("read: %v, want the source's error", err)
	}
	if _, _, err := p.Sums(); !errors.Is(err, broken) {
		t.Fatalf("Sums: %v, want the source's error", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// Closing the reader early, or cancelling ctx, stops the transform.
func TestPipeStops(t *testing.T) {
	t.Parallel()
	t.Run("close", func(t *testing.T) {
		t.Parallel()
		p, err := Pipe(t.Context(), zeros{}, Steps{Compress: CompressGzip})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(p, make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
		p.Close() // returns only once the goroutine has ended
		if _, _, err := p.Sums(); !errors.Is(err, errClosed) {
			t.Fatalf("Sums after Close: %v", err)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		p, err := Pipe(ctx, zeros{}, Steps{})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		cancel()
		if _, err := io.Copy(io.Discard, p); !errors.Is(err, context.Canceled) {
			t.Fatalf("read after cancel: %v", err)
		}
	})
}

// zeros is an endless stream of zero bytes.
type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}
