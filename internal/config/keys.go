package config

import (
	"fmt"
	"net/url"
	"regexp"

	"gopkg.in/yaml.v3"
)

// keyNameSyntax is the syntax of a key service's name under keys:.
var keyNameSyntax = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// keySchemes are the gocloud.dev/secrets URL schemes a key service may use.
var keySchemes = map[string]bool{"base64key": true, "awskms": true, "gcpkms": true, "azurekeyvault": true, "hashivault": true}

// parseKeys reads keys: a mapping of names to key service URLs.
func parseKeys(c *checker, f field) map[string]string {
	keys := map[string]string{}
	if !f.present() {
		return keys
	}
	// Any name may be a key: take the written ones as the known set, so
	// that mapping still reports duplicates and non-string keys.
	known := keySet{}
	if n := resolve(f.val); n.Kind == yaml.MappingNode {
		for i := 0; i < len(n.Content); i += 2 {
			known[resolve(n.Content[i]).Value] = nil
		}
	}
	for name, v := range c.mapping(f, known) {
		if !keyNameSyntax.MatchString(name) {
			c.errorf(v.key.Line, "%s: the name must match %s", v.path, keyNameSyntax)
			continue
		}
		if s := c.checked(v, checkKeyURL); s != "" {
			keys[name] = s
		}
	}
	return keys
}

func checkKeyURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || !keySchemes[u.Scheme] {
		return fmt.Errorf("%q is not a key service URL (base64key://, awskms://, gcpkms://, azurekeyvault:// or hashivault://)", s)
	}
	return nil
}
