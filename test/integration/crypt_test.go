package integration

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/klauspost/compress/zstd"

	"github.com/airlock-gw/airlock/internal/crypt"
	"github.com/airlock-gw/airlock/internal/testpeer"
)

// kmsEnvelope is an object as the egress pipelines write it: a data key
// from KMS GenerateDataKey, the body AES-CTR under it.
type kmsEnvelope struct {
	body    []byte
	meta    map[string]string
	dataKey []byte // the plaintext data key, to check a rewrap against
}

func sealWithKMS(t *testing.T, client *kms.Client, keyID string, plain []byte) kmsEnvelope {
	t.Helper()
	dk, err := client.GenerateDataKey(t.Context(), &kms.GenerateDataKeyInput{KeyId: aws.String(keyID), KeySpec: kmstypes.DataKeySpecAes256})
	if err != nil {
		t.Fatalf("GenerateDataKey: %v", err)
	}
	iv := make([]byte, aes.BlockSize)
	if _, err := rand.Read(iv); err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(dk.Plaintext)
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, len(plain))
	cipher.NewCTR(block, iv).XORKeyStream(body, plain)
	return kmsEnvelope{body: body, dataKey: dk.Plaintext, meta: map[string]string{
		crypt.MetaKeyID:      aws.ToString(dk.KeyId),
		crypt.MetaWrappedKey: base64.StdEncoding.EncodeToString(dk.CiphertextBlob),
		crypt.MetaIV:         base64.StdEncoding.EncodeToString(iv),
	}}
}

// TestCryptLocalKMS: objects envelope-encrypted with data keys from a
// real KMS (local-kms) decrypt through the awskms:// key service to their
// plaintext, rewrap for a recipient who unwraps with the private key, and
// a partial or tampered envelope is refused. Not parallel: the key
// service takes its credentials from the environment, as in production.
func TestCryptLocalKMS(t *testing.T) {
	lk := testpeer.StartLocalKMS(t)
	lk.Setenv(t)
	client := lk.Client()
	key, err := client.CreateKey(t.Context(), &kms.CreateKeyInput{Description: aws.String("airlock test dks")})
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	if _, err := client.CreateAlias(t.Context(), &kms.CreateAliasInput{
		AliasName: aws.String("alias/egress-test"), TargetKeyId: key.KeyMetadata.KeyId,
	}); err != nil {
		t.Fatalf("CreateAlias: %v", err)
	}
	keys, err := crypt.OpenKeys(t.Context(), lk.KeeperURL("alias/egress-test"))
	if err != nil {
		t.Fatal(err)
	}
	defer keys.Close()

	plain := make([]byte, 3<<20+123)
	if _, err := rand.Read(plain); err != nil {
		t.Fatal(err)
	}
	env := sealWithKMS(t, client, "alias/egress-test", plain)

	t.Run("decrypt", func(t *testing.T) {
		p, err := crypt.Pipe(t.Context(), bytes.NewReader(env.body), crypt.Steps{Decrypt: true, Meta: env.meta, Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		got, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, plain) {
			t.Fatal("the decrypted body is not the plaintext")
		}
		in, out, err := p.Sums()
		if err != nil {
			t.Fatal(err)
		}
		if in.SHA256 != cryptSHA(env.body) || out.SHA256 != cryptSHA(plain) {
			t.Errorf("sums before %s after %s, want the source's and the plaintext's", in.SHA256, out.SHA256)
		}
	})

	t.Run("decrypt zstd age", func(t *testing.T) {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		p, err := crypt.Pipe(t.Context(), bytes.NewReader(env.body), crypt.Steps{
			Decrypt: true, Meta: env.meta, Keys: keys,
			Compress: crypt.CompressZstd, Encrypt: crypt.EncryptSpec{Age: []string{id.Recipient().String()}},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		ar, err := age.Decrypt(p, id)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := zstd.NewReader(ar)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		got, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("age → zstd → %d bytes (%v), not the plaintext", len(got), err)
		}
	})

	t.Run("rewrap", func(t *testing.T) {
		priv, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := crypt.LoadRSAPublicKey(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
		if err != nil {
			t.Fatal(err)
		}
		meta, err := crypt.Rewrap(t.Context(), env.meta, keys, pub, "recipient-2026")
		if err != nil {
			t.Fatal(err)
		}
		wrapped, err := base64.StdEncoding.DecodeString(meta[crypt.MetaWrappedKey])
		if err != nil {
			t.Fatal(err)
		}
		dataKey, err := rsa.DecryptOAEP(sha256.New(), nil, priv, wrapped, nil)
		if err != nil {
			t.Fatalf("the recipient cannot unwrap: %v", err)
		}
		if !bytes.Equal(dataKey, env.dataKey) {
			t.Fatal("the rewrapped data key is not KMS's data key")
		}
		if meta[crypt.MetaKeyID] != "recipient-2026" || meta[crypt.MetaIV] != env.meta[crypt.MetaIV] {
			t.Errorf("rewrapped metadata %v", meta)
		}
		iv, _ := base64.StdEncoding.DecodeString(meta[crypt.MetaIV])
		block, _ := aes.NewCipher(dataKey)
		got := make([]byte, len(env.body))
		cipher.NewCTR(block, iv).XORKeyStream(got, env.body)
		if !bytes.Equal(got, plain) {
			t.Fatal("the recipient's decryption of the unchanged body is not the plaintext")
		}
	})

	t.Run("refused", func(t *testing.T) {
		tampered := mustBase64(t, env.meta[crypt.MetaWrappedKey])
		tampered[len(tampered)/2] ^= 1
		for _, tc := range []struct {
			name string
			meta map[string]string
			want string
		}{
			{"no iv", metaWithout(env.meta, crypt.MetaIV), "iv missing"},
			{"no wrapped key", metaWithout(env.meta, crypt.MetaWrappedKey), "ciphertext missing"},
			{"short iv", metaWith(env.meta, crypt.MetaIV, base64.StdEncoding.EncodeToString(make([]byte, 8))), "iv is 8 bytes"},
			{"tampered wrapped key", metaWith(env.meta, crypt.MetaWrappedKey, base64.StdEncoding.EncodeToString(tampered)), "unwrap data key"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				p, err := crypt.Pipe(t.Context(), bytes.NewReader(env.body), crypt.Steps{Decrypt: true, Meta: tc.meta, Keys: keys})
				if err == nil {
					p.Close()
					t.Fatal("the envelope was accepted")
				}
				if !strings.Contains(err.Error(), tc.want) {
					t.Errorf("error %q does not say %q", err, tc.want)
				}
				if tc.name != "tampered wrapped key" && !errors.Is(err, crypt.ErrEnvelope) {
					t.Errorf("error %q is not ErrEnvelope", err)
				}
			})
		}
	})
}

func cryptSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func mustBase64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func metaWithout(m map[string]string, key string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if k != key {
			out[k] = v
		}
	}
	return out
}

func metaWith(m map[string]string, key, val string) map[string]string {
	out := metaWithout(m, key)
	out[key] = val
	return out
}
