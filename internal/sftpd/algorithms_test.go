package sftpd

import (
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/airlock-gw/airlock/internal/config"
)

// TestAlgorithmProfiles: each profile offers only what x/crypto supports
// and does not call insecure, never SHA-1 or CBC, and only compatible
// offers the AES-CTR ciphers and encrypt-and-MAC MACs.
func TestAlgorithmProfiles(t *testing.T) {
	t.Parallel()
	supported, insecure := ssh.SupportedAlgorithms(), ssh.InsecureAlgorithms()
	for _, tc := range []struct {
		profile string
		ctr     bool
	}{
		{config.AlgorithmsModern, false},
		{config.AlgorithmsCompatible, true},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			t.Parallel()
			c := algorithms(tc.profile)
			for _, l := range []struct {
				kind              string
				got, ok, insecure []string
			}{
				// The @libssh.org alias is not listed, but x/crypto serves it.
				{"kex", slices.DeleteFunc(slices.Clone(c.KeyExchanges), func(s string) bool { return s == "curve25519-sha256@libssh.org" }), supported.KeyExchanges, insecure.KeyExchanges},
				{"cipher", c.Ciphers, supported.Ciphers, insecure.Ciphers},
				{"mac", c.MACs, supported.MACs, insecure.MACs},
			} {
				for _, a := range l.got {
					if !slices.Contains(l.ok, a) || slices.Contains(l.insecure, a) || strings.Contains(a, "sha1") || strings.Contains(a, "cbc") {
						t.Errorf("%s %q offered", l.kind, a)
					}
				}
			}
			if got := slices.Contains(c.Ciphers, ssh.CipherAES128CTR); got != tc.ctr {
				t.Errorf("aes128-ctr offered: %v", got)
			}
			if got := slices.Contains(c.MACs, ssh.HMACSHA256); got != tc.ctr {
				t.Errorf("hmac-sha2-256 offered: %v", got)
			}
			// The AEAD ciphers and ETM MACs are listed first.
			if c.Ciphers[0] != ssh.CipherAES128GCM || c.MACs[0] != ssh.HMACSHA256ETM {
				t.Errorf("ciphers %v, MACs %v", c.Ciphers, c.MACs)
			}
		})
	}
}
