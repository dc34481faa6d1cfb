package sftpd

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/ssh"

	"github.com/airlock-gw/airlock/internal/keyfile"
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
	pemBytes, err := keyfile.LoadOrCreate(p, comment)
	if err != nil {
		return nil, err
	}
	return ssh.ParsePrivateKey(pemBytes)
}
