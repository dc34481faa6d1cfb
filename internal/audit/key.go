// Package audit anchors the ledger's audit chain outside the database:
// checkpoints of the chain head, signed with a key the database never
// holds, written to a store of their own, and checked by audit verify.
package audit

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/crypto/ssh"

	"github.com/airlock-gw/airlock/internal/keyfile"
)

// LoadSigningKey reads the checkpoint signing key at p, first generating
// it (mode 0600) if there is none. Beside a key it generates it writes the
// public half, p + ".pub", for the auditors.
func LoadSigningKey(p string) (ed25519.PrivateKey, error) {
	pemBytes, err := keyfile.LoadOrCreate(p, "airlock audit checkpoint key")
	if err != nil {
		return nil, fmt.Errorf("audit signing key %s: %w", p, err)
	}
	raw, err := ssh.ParseRawPrivateKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("audit signing key %s: %w", p, err)
	}
	key, ok := raw.(*ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("audit signing key %s: a %T, not an ed25519 key", p, raw)
	}
	if err := writePublic(p+".pub", key.Public().(ed25519.PublicKey)); err != nil {
		return nil, fmt.Errorf("audit signing key %s: %w", p, err)
	}
	return *key, nil
}

// writePublic writes pub to p in the authorized_keys format, unless p
// exists: the file is for people, and one may have put it there.
func writePublic(p string, pub ed25519.PublicKey) error {
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(ssh.MarshalAuthorizedKey(sshPub)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// LoadPublicKey reads the checkpoint key's public half from p: a line in
// the authorized_keys format (the .pub file), or the private key itself.
func LoadPublicKey(p string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("audit public key: %w", err)
	}
	if sshPub, _, _, _, err := ssh.ParseAuthorizedKey(b); err == nil {
		if cpk, ok := sshPub.(ssh.CryptoPublicKey); ok {
			if pub, ok := cpk.CryptoPublicKey().(ed25519.PublicKey); ok {
				return pub, nil
			}
		}
		return nil, fmt.Errorf("audit public key %s: a %s key, not ssh-ed25519", p, sshPub.Type())
	}
	raw, err := ssh.ParseRawPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("audit public key %s: neither an ssh-ed25519 public key nor its private key", p)
	}
	key, ok := raw.(*ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("audit public key %s: a %T, not an ed25519 key", p, raw)
	}
	return key.Public().(ed25519.PublicKey), nil
}

// KeyID names a key's series of checkpoints: the first 16 hex digits of
// the sha256 of the public key. A new key starts a new series.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}
