package crypt

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"gocloud.dev/secrets"
	_ "gocloud.dev/secrets/awskms"       // awskms:// (production)
	_ "gocloud.dev/secrets/localsecrets" // base64key:// (tests, small deployments)
)

// KeyService unwraps a data key. A *secrets.Keeper is one.
type KeyService interface {
	Decrypt(ctx context.Context, ciphertext []byte) ([]byte, error)
}

// OpenKeys opens the key service at u: base64key://<base64 32-byte key>
// (gocloud's localsecrets: NaCl secretbox) or
// awskms://<key id or alias/NAME>?region=…[&endpoint=…] (AWS KMS, with
// the credentials of the environment). Other schemes are refused, so that
// a typo never falls back to something weaker. The caller closes the
// keeper.
func OpenKeys(ctx context.Context, u string) (*secrets.Keeper, error) {
	// Errors never quote u: a base64key:// URL is the key itself.
	parsed, err := url.Parse(u)
	if err != nil {
		return nil, errors.New("open key service: malformed URL")
	}
	switch parsed.Scheme {
	case "base64key", "awskms":
	default:
		return nil, fmt.Errorf("open key service: scheme %q: want base64key:// or awskms://", parsed.Scheme)
	}
	k, err := secrets.OpenKeeper(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("open key service %s://: %w", parsed.Scheme, err)
	}
	return k, nil
}
