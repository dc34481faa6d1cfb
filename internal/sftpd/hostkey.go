package sftpd

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"
)

// LoadHostKeys reads the host keys at paths, generating an ed25519 key
// (mode 0600) for any path that does not exist yet, so that a first start
// needs no preparation and later starts keep the same identity.
func LoadHostKeys(paths []string) ([]ssh.Signer, error) {
	if len(paths) == 0 {
		return nil, errors.New("no host keys configured")
	}
	signers := make([]ssh.Signer, 0, len(paths))
	for _, p := range paths {
		signer, err := LoadOrCreateKey(p, "airlock host key")
		if err != nil {
			return nil, fmt.Errorf("host key %s: %w", p, err)
		}
		signers = append(signers, signer)
	}
	return signers, nil
}

// LoadOrCreateKey reads the private key at p, first writing a new ed25519
// key there (OpenSSH format, mode 0600, with comment) if there is none.
func LoadOrCreateKey(p, comment string) (ssh.Signer, error) {
	pemBytes, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		pemBytes, err = generateKey(p, comment)
	}
	if err != nil {
		return nil, err
	}
	return ssh.ParsePrivateKey(pemBytes)
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
	tmp, err := os.CreateTemp(filepath.Dir(p), ".hostkey-*")
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
