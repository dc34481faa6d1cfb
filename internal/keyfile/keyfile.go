// Package keyfile keeps ed25519 private keys in files of their own, out of
// the database: the SSH host keys and the audit checkpoint key.
package keyfile

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"
)

// LoadOrCreate returns the PEM text of the private key at p, first writing
// a new ed25519 key there (OpenSSH format, mode 0600, with comment) if
// there is none, so that a first start needs no preparation and later
// starts keep the same key.
func LoadOrCreate(p, comment string) ([]byte, error) {
	pemBytes, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return generateKey(p, comment)
	}
	return pemBytes, err
}

func generateKey(p, comment string) ([]byte, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, err
	}
	pemBytes := pem.EncodeToMemory(block)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, err
	}
	// The key is written in full under a temporary name and then linked
	// into place: linking fails if the name exists, so of two nodes
	// starting at once one wins and the other reads the winner's complete
	// key, never a half-written one.
	tmp, err := os.CreateTemp(filepath.Dir(p), ".key-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(pemBytes); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	if err := os.Link(tmp.Name(), p); errors.Is(err, fs.ErrExist) {
		return os.ReadFile(p)
	} else if err != nil {
		return nil, err
	}
	return pemBytes, nil
}
