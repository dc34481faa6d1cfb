package config

import (
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/airlock-gw/airlock/internal/redact"
)

// Parsers for single values. Each returns the normalised value or an error
// whose text follows the field path in the final "file:line: path: msg".

// resolvePath makes p absolute against root, the directory of airlock.yaml.
func resolvePath(root, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(root, p)
}

// hostname is a DNS name: dot-separated labels of letters, digits and
// inner hyphens.
var hostname = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$`)

func validHost(host string) bool {
	_, err := netip.ParseAddr(host)
	return err == nil || hostname.MatchString(host)
}

// checkHostPort accepts "host:port" with an optional host (":2222" listens on
// all interfaces) and a numeric port in 1-65535.
func checkHostPort(s string, hostRequired bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", s, err)
	}
	if host == "" && hostRequired {
		return fmt.Errorf("%q has no host", s)
	}
	if host != "" && !validHost(host) {
		return fmt.Errorf("%q: %q is neither an IP address nor a host name", s, host)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port %q must be a number from 1 to 65535", s, port)
	}
	return nil
}

// parseDatabase returns "sqlite:<absolute path>" or the postgres URL as given.
func parseDatabase(s, root string) (string, error) {
	if p, ok := strings.CutPrefix(s, "sqlite:"); ok {
		if p == "" {
			return "", errors.New(`"sqlite:" needs a path, like "sqlite:state/airlock.db"`)
		}
		return "sqlite:" + resolvePath(root, p), nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return "", fmt.Errorf("%q must be sqlite:<path> or a postgres:// or postgresql:// URL", redact.URL(s))
	}
	return s, nil
}

// urlScheme matches the start of anything that is meant as a URL rather
// than a path (RFC 3986 scheme syntax).
var urlScheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)

// parseStore accepts a plain path (made absolute against root) or a URL of
// one of the storeSchemes, returned unchanged.
func parseStore(s, root string) (string, error) {
	if !urlScheme.MatchString(s) {
		return resolvePath(root, s), nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("invalid URL: %w", err)
	}
	switch u.Scheme {
	case "s3", "gs", "azblob":
		if u.Host == "" {
			return "", fmt.Errorf("%q has no bucket: write %s://<bucket>/<prefix>", s, u.Scheme)
		}
	case "file":
		if u.Path == "" {
			return "", fmt.Errorf("%q has no path: write file:///absolute/path", s)
		}
	case "mem":
	default:
		return "", fmt.Errorf("%q: unsupported scheme %q (use a path or a file, s3, gs, azblob or mem URL)", s, u.Scheme)
	}
	return s, nil
}

// parseClamd returns "unix:<absolute path>", "tcp://host:port", or "" (the
// builtin scanner) for "".
func parseClamd(s, root string) (string, error) {
	if s == "" {
		return "", nil
	}
	if p, ok := strings.CutPrefix(s, "unix:"); ok && p != "" {
		return "unix:" + resolvePath(root, p), nil
	}
	if hp, ok := strings.CutPrefix(s, "tcp://"); ok {
		if err := checkHostPort(hp, true); err != nil {
			return "", err
		}
		return s, nil
	}
	return "", fmt.Errorf("%q must be unix:<socket path> or tcp://host:port", s)
}

// parseDenyList returns the absolute path of the builtin scanner's
// deny-list, or "" for none. The file must exist now, so that a typo fails
// validation instead of leaving the scanner without its list.
func parseDenyList(s, root string) (string, error) {
	if s == "" {
		return "", nil
	}
	p := resolvePath(root, s)
	switch fi, err := os.Stat(p); {
	case err != nil:
		return "", fmt.Errorf("%q: %s", s, pathErr(err))
	case fi.IsDir():
		return "", fmt.Errorf("%q is a directory, not a file", s)
	}
	return p, nil
}

// parseWebhookURL checks a webhook URL: https, or http, which the caller
// allows only to a loopback host.
func parseWebhookURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return nil, fmt.Errorf("invalid URL: %w", err)
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("%q must be an https:// URL", s)
	case u.Host == "":
		return nil, fmt.Errorf("%q has no host", s)
	case !validHost(u.Hostname()):
		return nil, fmt.Errorf("%q: %q is neither an IP address nor a host name", s, u.Hostname())
	}
	return u, nil
}

// envName is the syntax of an environment variable name.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// checkEnvName checks the name of an environment variable that holds a
// secret; the secret itself never appears in the configuration.
func checkEnvName(s string) error {
	if !envName.MatchString(s) {
		return fmt.Errorf("%q is not an environment variable name (letters, digits and _, not starting with a digit)", s)
	}
	return nil
}

// parseTempPattern checks a path.Match pattern for temporary upload names.
func parseTempPattern(p string) error {
	if p == "" || strings.Contains(p, "/") {
		return fmt.Errorf("%q must be a non-empty pattern for a base name, without /", p)
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("%q: %w", p, err)
	}
	return nil
}

// parseEmail returns the bare address (what SMTP needs) of a single address,
// with or without a display name.
func parseEmail(s string) (string, error) {
	a, err := mail.ParseAddress(s)
	if err != nil {
		return "", fmt.Errorf("%q is not a single email address: %w", s, err)
	}
	return a.Address, nil
}

// parsePrefix accepts a CIDR or a bare address (a single host). A CIDR with
// host bits set is almost always a typo, so it is an error, not masked.
func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR", s)
		}
		return unmapPrefix(netip.PrefixFrom(a, a.BitLen())), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a valid CIDR", s)
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set (did you mean %s?)", s, m)
	}
	return unmapPrefix(p), nil
}

// unmapPrefix turns ::ffff:a.b.c.d/n into a.b.c.d/(n-96), because AllowsIP
// matches clients by their unmapped address.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}
