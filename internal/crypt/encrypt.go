package crypt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"filippo.io/age"
	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// EncryptSpec is a route's encrypt: either age recipients or one armored
// OpenPGP public key (a key ring of one or more keys, all recipients).
type EncryptSpec struct {
	Age []string // "age1…" (X25519) or "age1pq1…" (hybrid post-quantum; age refuses a mix of both)
	PGP []byte   // the armored public key file's bytes
}

// IsZero reports whether s asks for no encryption.
func (s EncryptSpec) IsZero() bool { return len(s.Age) == 0 && len(s.PGP) == 0 }

// Validate parses the recipients, for a config check before any file.
func (s EncryptSpec) Validate() error {
	_, err := s.open(io.Discard)
	return err
}

// Encrypt returns a writer that encrypts into w for spec's recipients.
// Closing it finishes the message; it does not close w.
func Encrypt(w io.Writer, spec EncryptSpec) (io.WriteCloser, error) {
	return spec.open(w)
}

func (s EncryptSpec) open(w io.Writer) (io.WriteCloser, error) {
	switch {
	case len(s.Age) > 0 && len(s.PGP) > 0:
		return nil, errors.New("encrypt: age and pgp both given, want one")
	case len(s.Age) > 0:
		return encryptAge(w, s.Age)
	case len(s.PGP) > 0:
		return encryptPGP(w, s.PGP)
	default:
		return nil, errors.New("encrypt: no recipients")
	}
}

func encryptAge(w io.Writer, recipients []string) (io.WriteCloser, error) {
	recs := make([]age.Recipient, 0, len(recipients))
	for i, s := range recipients {
		s = strings.TrimSpace(s)
		var r age.Recipient
		var err error
		if strings.HasPrefix(s, "age1pq1") {
			r, err = age.ParseHybridRecipient(s)
		} else {
			r, err = age.ParseX25519Recipient(s)
		}
		if err != nil {
			// Not err: age quotes the string, which may be a secret
			// identity pasted by mistake.
			return nil, fmt.Errorf("encrypt: age recipient %d: not an age1… public key", i+1)
		}
		recs = append(recs, r)
	}
	ew, err := age.Encrypt(w, recs...)
	if err != nil {
		return nil, fmt.Errorf("encrypt: age: %w", err)
	}
	return ew, nil
}

// pgpConfig: AES-256 and no OpenPGP compression (compress: does that, before).
var pgpConfig = &packet.Config{DefaultCipher: packet.CipherAES256}

func encryptPGP(w io.Writer, armored []byte) (io.WriteCloser, error) {
	ring, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(armored))
	if err != nil {
		return nil, fmt.Errorf("encrypt: pgp key: %w", err)
	}
	if len(ring) == 0 {
		return nil, errors.New("encrypt: pgp key: no keys")
	}
	ew, err := openpgp.Encrypt(w, ring, nil, &openpgp.FileHints{IsBinary: true}, pgpConfig)
	if err != nil {
		return nil, fmt.Errorf("encrypt: pgp: %w", err)
	}
	return ew, nil
}
