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
		pemBytes, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			pemBytes, err = generateHostKey(p)
		}
		if err != nil {
			return nil, fmt.Errorf("host key %s: %w", p, err)
		}
		signer, err := ssh.ParsePrivateKey(pemBytes)
		if err != nil {
			return nil, fmt.Errorf("host key %s: %w", p, err)
		}
		signers = append(signers, signer)
	}
	return signers, nil
}

func generateHostKey(p string) ([]byte, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "airlock host key")
	if err != nil {
		return nil, err
	}
	pemBytes := pem.EncodeToMemory(block)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, err
	}
	// O_EXCL: two nodes starting at once must not overwrite each other's key.
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return os.ReadFile(p)
	}
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(pemBytes); err != nil {
		f.Close()
		return nil, err
	}
	return pemBytes, f.Close()
}
