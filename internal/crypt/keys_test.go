package crypt

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
)

func TestOpenKeys(t *testing.T) {
	t.Parallel()
	secret := base64.URLEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	keys, err := OpenKeys(t.Context(), "base64key://"+secret)
	if err != nil {
		t.Fatal(err)
	}
	defer keys.Close()
	wrapped, err := keys.Encrypt(context.Background(), []byte("data key"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := keys.Decrypt(t.Context(), wrapped); err != nil || string(got) != "data key" {
		t.Fatalf("round trip: %q, %v", got, err)
	}
	for _, u := range []string{
		"gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k", // a driver airlock does not offer
		"file:///etc/keys",
		"base64key://" + secret[:10], // too short a key
		"://" + secret,
		secret,
	} {
		_, err := OpenKeys(t.Context(), u)
		if err == nil {
			t.Errorf("OpenKeys(%q) accepted it", u)
			continue
		}
		if strings.Contains(err.Error(), secret[:10]) {
			t.Errorf("OpenKeys error %q quotes the key", err)
		}
	}
}
