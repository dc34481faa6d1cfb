package crypt

import (
	"context"
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
	"fmt"
	"io"
	"strings"
)

// The envelope's metadata keys, as the egress pipelines write them.
const (
	MetaKeyID      = "datakeyencryptionkeyid"
	MetaWrappedKey = "ciphertext"
	MetaIV         = "iv"
)

// Envelope is an object's parsed envelope metadata.
type Envelope struct {
	KeyID      string // the id of the key that wrapped the data key
	WrappedKey []byte // the data key, wrapped
	IV         []byte // always aes.BlockSize bytes
}

// ErrEnvelope is wrapped by every error about an object's envelope
// metadata: the object is refused, not sent on.
var ErrEnvelope = errors.New("invalid envelope")

// ParseEnvelope reads the envelope from an object's metadata. Keys match
// case-insensitively (S3 lowercases user metadata; HTTP canonicalises
// it); every field must be present, non-empty and well-formed, and an
// error names the first that is not.
func ParseEnvelope(meta map[string]string) (Envelope, error) {
	var env Envelope
	var err error
	if env.KeyID, err = metaField(meta, MetaKeyID); err != nil {
		return Envelope{}, err
	}
	if env.WrappedKey, err = metaBase64(meta, MetaWrappedKey); err != nil {
		return Envelope{}, err
	}
	if env.IV, err = metaBase64(meta, MetaIV); err != nil {
		return Envelope{}, err
	}
	if len(env.IV) != aes.BlockSize {
		return Envelope{}, fmt.Errorf("%w: %s is %d bytes, want %d", ErrEnvelope, MetaIV, len(env.IV), aes.BlockSize)
	}
	return env, nil
}

// metaField returns the one non-empty value of key in meta, whatever its
// case; two spellings of one key are refused rather than one picked.
func metaField(meta map[string]string, key string) (string, error) {
	var val string
	found := false
	for k, v := range meta {
		if !strings.EqualFold(k, key) {
			continue
		}
		if found {
			return "", fmt.Errorf("%w: %s given twice", ErrEnvelope, key)
		}
		val, found = strings.TrimSpace(v), true
	}
	if !found {
		return "", fmt.Errorf("%w: %s missing", ErrEnvelope, key)
	}
	if val == "" {
		return "", fmt.Errorf("%w: %s empty", ErrEnvelope, key)
	}
	return val, nil
}

func metaBase64(meta map[string]string, key string) ([]byte, error) {
	s, err := metaField(meta, key)
	if err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not base64", ErrEnvelope, key)
	}
	return b, nil
}

// unwrap parses meta and unwraps its data key with keys, refusing a key
// AES has no variant for.
func unwrap(ctx context.Context, meta map[string]string, keys KeyService) (Envelope, []byte, error) {
	env, err := ParseEnvelope(meta)
	if err != nil {
		return Envelope{}, nil, err
	}
	if keys == nil {
		return Envelope{}, nil, errors.New("no key service to unwrap the data key")
	}
	dataKey, err := keys.Decrypt(ctx, env.WrappedKey)
	if err != nil {
		return Envelope{}, nil, fmt.Errorf("unwrap data key (%s %s): %w", MetaKeyID, env.KeyID, err)
	}
	switch len(dataKey) {
	case 16, 24, 32:
	default:
		return Envelope{}, nil, fmt.Errorf("%w: data key unwrapped to %d bytes, want 16, 24 or 32", ErrEnvelope, len(dataKey))
	}
	return env, dataKey, nil
}

// Decrypt returns the plaintext of r, an envelope-encrypted body whose
// metadata is meta: the data key is unwrapped with keys before anything
// is read, so a refused envelope is refused before any byte goes out.
func Decrypt(ctx context.Context, r io.Reader, meta map[string]string, keys KeyService) (io.Reader, error) {
	env, dataKey, err := unwrap(ctx, meta, keys)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	block, err := aes.NewCipher(dataKey)
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	return cipher.StreamReader{S: cipher.NewCTR(block, env.IV), R: r}, nil
}

// Rewrap unwraps meta's data key with keys and wraps it again for the
// recipient, RSA-OAEP with SHA-256 (no label). It returns a copy of meta
// with the new wrapped key, keyID as the key id and the IV unchanged: the
// body goes out as it is, still encrypted under the same data key.
func Rewrap(ctx context.Context, meta map[string]string, keys KeyService, recipient *rsa.PublicKey, keyID string) (map[string]string, error) {
	if keyID == "" {
		return nil, errors.New("rewrap: empty recipient key id")
	}
	env, dataKey, err := unwrap(ctx, meta, keys)
	if err != nil {
		return nil, fmt.Errorf("rewrap: %w", err)
	}
	wrapped, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, recipient, dataKey, nil)
	if err != nil {
		return nil, fmt.Errorf("rewrap: %w", err)
	}
	out := make(map[string]string, len(meta))
	for k, v := range meta {
		switch strings.ToLower(k) {
		case MetaKeyID, MetaWrappedKey, MetaIV: // replaced below, in their canonical spelling
		default:
			out[k] = v
		}
	}
	out[MetaKeyID] = keyID
	out[MetaWrappedKey] = base64.StdEncoding.EncodeToString(wrapped)
	out[MetaIV] = base64.StdEncoding.EncodeToString(env.IV)
	return out, nil
}

// LoadRSAPublicKey parses a PEM RSA public key: "PUBLIC KEY" (PKIX) or
// "RSA PUBLIC KEY" (PKCS#1). Keys under 2048 bits are refused.
func LoadRSAPublicKey(pemBytes []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("rsa public key: no PEM block")
	}
	var pub *rsa.PublicKey
	switch block.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("rsa public key: %w", err)
		}
		rk, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("rsa public key: a %T, not RSA", k)
		}
		pub = rk
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("rsa public key: %w", err)
		}
		pub = k
	default:
		return nil, fmt.Errorf("rsa public key: PEM block %q, want PUBLIC KEY or RSA PUBLIC KEY", block.Type)
	}
	if pub.N.BitLen() < 2048 {
		return nil, fmt.Errorf("rsa public key: %d bits, want at least 2048", pub.N.BitLen())
	}
	return pub, nil
}

// Fingerprint names an RSA public key: "sha256:" and the hex SHA-256 of
// its PKIX encoding, a key id for Rewrap when the recipient gave none.
func Fingerprint(pub *rsa.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil { // only for keys x509 cannot encode, which LoadRSAPublicKey never returns
		return ""
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}
