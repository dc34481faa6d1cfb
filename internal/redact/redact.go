// Package redact is airlock's one policy for showing a URL where secrets
// must not go (logs, the ledger, error messages, a client): no user info,
// no fragment, and no query parameter whose name looks secret (a pasted
// SAS token, a presigned URL's signature, a password).
package redact

import (
	"maps"
	"net/url"
	"strings"
)

// URL returns raw as it may be shown: raw itself when it holds nothing to
// hide, and a placeholder when it does not parse (its text could be
// anything).
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(a URL that does not parse)"
	}
	q := u.Query()
	if u.User == nil && u.Fragment == "" && !hasSecret(q) {
		return raw
	}
	return Parsed(u)
}

// Parsed is URL for a parsed URL; it always re-encodes.
func Parsed(u *url.URL) string {
	c := *u
	kept := maps.Clone(c.Query())
	maps.DeleteFunc(kept, func(k string, _ []string) bool { return SecretParam(k) })
	c.User, c.RawQuery, c.ForceQuery, c.Fragment, c.RawFragment = nil, kept.Encode(), false, "", ""
	return c.String()
}

func hasSecret(q url.Values) bool {
	for k := range q {
		if SecretParam(k) {
			return true
		}
	}
	return false
}

var secretWords = []string{"secret", "token", "password", "passwd", "credential", "signature", "private", "access_key", "accesskey", "apikey", "api_key"}

// SecretParam reports whether a query parameter's name looks secret.
func SecretParam(name string) bool {
	n := strings.ToLower(name)
	if n == "sig" {
		return true
	}
	for _, w := range secretWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}
