package crypt

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"gocloud.dev/secrets"
	"gocloud.dev/secrets/localsecrets"
)

// newKeeper is a key service with a fresh random key.
func newKeeper(t testing.TB) *secrets.Keeper {
	t.Helper()
	k, err := localsecrets.NewRandomKey()
	if err != nil {
		t.Fatal(err)
	}
	keeper := localsecrets.NewKeeper(k)
	t.Cleanup(func() { _ = keeper.Close() })
	return keeper
}

// seal envelope-encrypts plaintext as the egress pipelines do: a random
// data key of keyLen bytes wrapped by keys, AES-CTR under a random IV.
func seal(t testing.TB, keys *secrets.Keeper, keyLen int, plaintext []byte) ([]byte, map[string]string) {
	t.Helper()
	dataKey, iv := randBytes(t, keyLen), randBytes(t, aes.BlockSize)
	wrapped, err := keys.Encrypt(context.Background(), dataKey)
	if err != nil {
		t.Fatal(err)
	}
	return ctr(t, dataKey, iv, plaintext), envelopeMeta("dks-1", wrapped, iv)
}

func envelopeMeta(keyID string, wrapped, iv []byte) map[string]string {
	return map[string]string{
		MetaKeyID:      keyID,
		MetaWrappedKey: base64.StdEncoding.EncodeToString(wrapped),
		MetaIV:         base64.StdEncoding.EncodeToString(iv),
	}
}

func ctr(t testing.TB, key, iv, in []byte) []byte {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, len(in))
	cipher.NewCTR(block, iv).XORKeyStream(out, in)
	return out
}

func randBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecrypt(t *testing.T) {
	t.Parallel()
	keys := newKeeper(t)
	plain := bytes.Repeat([]byte("the quick brown fox "), 10_000)
	for _, tc := range []struct {
		name   string
		keyLen int
		size   int
	}{
		{"aes-128", 16, len(plain)},
		{"aes-192", 24, len(plain)},
		{"aes-256", 32, len(plain)},
		{"empty body", 32, 0},
		{"partial block", 32, 17},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body, meta := seal(t, keys, tc.keyLen, plain[:tc.size])
			r, err := Decrypt(t.Context(), bytes.NewReader(body), meta, keys)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, plain[:tc.size]) {
				t.Fatalf("decrypted %d bytes differ from the %d of plaintext", len(got), tc.size)
			}
		})
	}
}

func TestDecryptRefusesEnvelope(t *testing.T) {
	t.Parallel()
	keys := newKeeper(t)
	wrap := func(n int) string {
		w, err := keys.Encrypt(context.Background(), make([]byte, n))
		if err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(w)
	}
	good := map[string]string{MetaKeyID: "dks-1", MetaWrappedKey: wrap(32), MetaIV: base64.StdEncoding.EncodeToString(make([]byte, 16))}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for gk, gv := range good {
			if gk != k {
				m[gk] = gv
			}
		}
		if v != "\x00" { // "\x00": leave the key out
			m[k] = v
		}
		return m
	}
	otherKeys := newKeeper(t)
	for _, tc := range []struct {
		name     string
		meta     map[string]string
		keys     KeyService
		want     string
		envelope bool // errors.Is(err, ErrEnvelope)
	}{
		{"no metadata", nil, keys, MetaKeyID + " missing", true},
		{"no key id", with(MetaKeyID, "\x00"), keys, MetaKeyID + " missing", true},
		{"empty key id", with(MetaKeyID, " "), keys, MetaKeyID + " empty", true},
		{"no wrapped key", with(MetaWrappedKey, "\x00"), keys, MetaWrappedKey + " missing", true},
		{"wrapped key not base64", with(MetaWrappedKey, "not*base64"), keys, MetaWrappedKey + " is not base64", true},
		{"no iv", with(MetaIV, "\x00"), keys, MetaIV + " missing", true},
		{"iv not base64", with(MetaIV, "!!"), keys, MetaIV + " is not base64", true},
		{"iv 15 bytes", with(MetaIV, base64.StdEncoding.EncodeToString(make([]byte, 15))), keys, MetaIV + " is 15 bytes, want 16", true},
		{"iv 32 bytes", with(MetaIV, base64.StdEncoding.EncodeToString(make([]byte, 32))), keys, MetaIV + " is 32 bytes", true},
		{"data key 20 bytes", with(MetaWrappedKey, wrap(20)), keys, "data key unwrapped to 20 bytes", true},
		{"data key empty", with(MetaWrappedKey, wrap(0)), keys, "data key unwrapped to 0 bytes", true},
		{"key twice", with("IV", good[MetaIV]), keys, MetaIV + " given twice", true},
		{"wrong key service", good, otherKeys, "unwrap data key (datakeyencryptionkeyid dks-1)", false},
		{"no key service", good, nil, "no key service", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := Decrypt(t.Context(), strings.NewReader("ciphertext"), tc.meta, tc.keys)
			if err == nil {
				t.Fatalf("Decrypt accepted the envelope; a reader %T came back", r)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if errors.Is(err, ErrEnvelope) != tc.envelope {
				t.Errorf("errors.Is(%q, ErrEnvelope) = %v, want %v", err, !tc.envelope, tc.envelope)
			}
		})
	}
}

// The same envelope, its keys spelled as S3 or HTTP headers would: accepted.
func TestParseEnvelopeCaseInsensitive(t *testing.T) {
	t.Parallel()
	iv := make([]byte, 16)
	env, err := ParseEnvelope(map[string]string{
		"Datakeyencryptionkeyid": "k1", "CIPHERTEXT": "AAAA", "Iv": base64.StdEncoding.EncodeToString(iv),
	})
	if err != nil {
		t.Fatal(err)
	}
	if env.KeyID != "k1" || len(env.WrappedKey) != 3 || !bytes.Equal(env.IV, iv) {
		t.Fatalf("parsed %+v", env)
	}
}

var rsaKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })

func testRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsaKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestRewrap(t *testing.T) {
	t.Parallel()
	keys := newKeeper(t)
	priv := testRSAKey(t)
	pkix, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		pem  []byte
	}{
		{"pkix", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix})},
		{"pkcs1", pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&priv.PublicKey)})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pub, err := LoadRSAPublicKey(tc.pem)
			if err != nil {
				t.Fatal(err)
			}
			plain := []byte("rows of a report, for the recipient only")
			body, meta := seal(t, keys, 32, plain)
			meta["source-file"] = "report.csv"
			out, err := Rewrap(t.Context(), meta, keys, pub, Fingerprint(pub))
			if err != nil {
				t.Fatal(err)
			}
			if out[MetaKeyID] != Fingerprint(pub) || !strings.HasPrefix(out[MetaKeyID], "sha256:") {
				t.Errorf("key id %q, want the recipient's fingerprint %q", out[MetaKeyID], Fingerprint(pub))
			}
			if out[MetaIV] != meta[MetaIV] || out["source-file"] != "report.csv" {
				t.Errorf("rewrap changed the iv or dropped other metadata: %v", out)
			}
			if out[MetaWrappedKey] == meta[MetaWrappedKey] {
				t.Fatal("the wrapped key is unchanged")
			}
			// The recipient: unwrap with the private key, decrypt the body.
			wrapped, err := base64.StdEncoding.DecodeString(out[MetaWrappedKey])
			if err != nil {
				t.Fatal(err)
			}
			dataKey, err := rsa.DecryptOAEP(sha256.New(), nil, priv, wrapped, nil)
			if err != nil {
				t.Fatalf("the recipient cannot unwrap: %v", err)
			}
			iv, _ := base64.StdEncoding.DecodeString(out[MetaIV])
			if got := ctr(t, dataKey, iv, body); !bytes.Equal(got, plain) {
				t.Fatalf("the recipient decrypts %q", got)
			}
		})
	}
}

func TestRewrapRefuses(t *testing.T) {
	t.Parallel()
	keys := newKeeper(t)
	pub := &testRSAKey(t).PublicKey
	_, meta := seal(t, keys, 32, []byte("x"))
	if _, err := Rewrap(t.Context(), meta, keys, pub, ""); err == nil {
		t.Error("rewrap accepted an empty key id")
	}
	delete(meta, MetaIV)
	if _, err := Rewrap(t.Context(), meta, keys, pub, "k"); !errors.Is(err, ErrEnvelope) {
		t.Errorf("rewrap of a partial envelope: %v, want ErrEnvelope", err)
	}
}

func TestLoadRSAPublicKeyRefuses(t *testing.T) {
	t.Parallel()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallDER, _ := x509.MarshalPKIXPublicKey(&small.PublicKey)
	for _, tc := range []struct {
		name, pem, want string
	}{
		{"not pem", "ssh-rsa AAAA", "no PEM block"},
		{"private key", string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: []byte{1}})), `"RSA PRIVATE KEY"`},
		{"garbage pkix", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2}})), "rsa public key:"},
		{"1024 bits", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: smallDER})), "1024 bits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := LoadRSAPublicKey([]byte(tc.pem)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// FuzzEnvelopeMeta: whatever the metadata, ParseEnvelope never panics and
// accepts only a complete envelope with a 16-byte IV.
func FuzzEnvelopeMeta(f *testing.F) {
	f.Add("dks-1", "AAAA", base64.StdEncoding.EncodeToString(make([]byte, 16)), "iv")
	f.Add("", "", "", "")
	f.Add("k", "not base64", "AAAAAAAAAAAAAAAAAAAAAA==", "IV")
	f.Add("k", "AA==", "AAAAAAAAAAAAAAAAAAAA", "ciphertext")
	f.Fuzz(func(t *testing.T, keyID, wrapped, iv, extra string) {
		meta := map[string]string{MetaKeyID: keyID, MetaWrappedKey: wrapped, MetaIV: iv}
		if extra != "" {
			meta[extra] = iv
		}
		env, err := ParseEnvelope(meta)
		if err != nil {
			if !errors.Is(err, ErrEnvelope) {
				t.Fatalf("error %v does not wrap ErrEnvelope", err)
			}
			return
		}
		if len(env.IV) != aes.BlockSize || len(env.WrappedKey) == 0 || env.KeyID == "" {
			t.Fatalf("accepted an incomplete envelope %+v", env)
		}
	})
}
