package config

import (
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"
)

// Supplier is one external organisation, loaded from suppliers/<name>.yaml.
type Supplier struct {
	Name        string // also the SFTP user name
	Email       string // bare address for notifications
	AllowedIPs  []netip.Prefix
	SSHKeys     []AuthorizedKey
	Destination Target
	Egress      *Target // nil when the supplier has no egress
	// Overwrite is what a second upload of a path already delivered
	// does: OverwriteAllow, OverwriteDeny or OverwriteVersion.
	Overwrite string
	File      string // absolute path of the supplier file
}

// The values of Supplier.Overwrite.
const (
	OverwriteAllow   = "allow"   // the later upload replaces the delivered copy, audited
	OverwriteDeny    = "deny"    // the later upload is refused
	OverwriteVersion = "version" // the later upload is delivered beside it, under a name of its own
)

// Target is where files go. URL is an absolute path, or a store URL as
// written; relative paths resolve against the config root (the directory
// of airlock.yaml), not the suppliers directory.
type Target struct {
	URL    string
	KMSKey string
}

// AuthorizedKey is one public key a supplier may log in with.
type AuthorizedKey struct {
	Key         ssh.PublicKey
	Type        string // the SSH key type, e.g. "ssh-ed25519", "ssh-rsa"
	Bits        int    // RSA modulus size; 0 for other types
	Comment     string
	Fingerprint string // ssh.FingerprintSHA256
	// Expires is the first instant the key is refused; zero means never.
	// An expiry written as a date (2027-03-31) lets the key work until the
	// end of that day in UTC: Expires is then the start of the next day.
	Expires time.Time
}

// ExpiredAt reports whether the key is refused at t.
func (k AuthorizedKey) ExpiredAt(t time.Time) bool {
	return !k.Expires.IsZero() && !t.Before(k.Expires)
}

// KeyStatus says whether a key is usable at some moment.
type KeyStatus string

// The values of KeyStatus.
const (
	KeyOK       KeyStatus = "ok"       // no expiry, or not within the window asked about
	KeyExpiring KeyStatus = "expiring" // still accepted, but expires within the window
	KeyExpired  KeyStatus = "expired"  // refused
)

// StatusAt says whether the key is expired at t, or expires within the
// given window after t.
func (k AuthorizedKey) StatusAt(t time.Time, within time.Duration) KeyStatus {
	switch {
	case k.ExpiredAt(t):
		return KeyExpired
	case !k.Expires.IsZero() && k.Expires.Sub(t) <= within:
		return KeyExpiring
	}
	return KeyOK
}

// ExpiryDate is the last day, in UTC, on which the key is accepted, as
// YYYY-MM-DD: for "expires: 2027-03-31" it is "2027-03-31". It is "" for a
// key that never expires.
func (k AuthorizedKey) ExpiryDate() string {
	if k.Expires.IsZero() {
		return ""
	}
	return k.Expires.UTC().Add(-time.Nanosecond).Format(time.DateOnly)
}

// AllowsIP reports whether a is in one of s.AllowedIPs. IPv4 clients that
// reach a dual-stack listener appear as ::ffff:a.b.c.d, so a is unmapped.
func (s *Supplier) AllowsIP(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range s.AllowedIPs {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Authorize returns the supplier's key equal to key. It compares every key
// in constant time, so timing does not reveal which key (if any) matched.
func (s *Supplier) Authorize(key ssh.PublicKey) (AuthorizedKey, bool) {
	want := key.Marshal()
	var match AuthorizedKey
	found := false
	for _, k := range s.SSHKeys {
		if subtle.ConstantTimeCompare(k.Key.Marshal(), want) == 1 {
			match, found = k, true
		}
	}
	return match, found
}

// Suppliers is an immutable set of suppliers, looked up by name (the SFTP
// user name); share it freely between goroutines.
type Suppliers struct {
	named[Supplier]
	warnings Errors
}

// Warnings returns the risky but legal settings found in the supplier
// files when they were loaded, sorted by file and line. Warnings that
// depend on the date (a key about to expire) are as of the load.
func (s *Suppliers) Warnings() Errors {
	return slices.Clone(s.warnings)
}

var nameSyntax = regexp.MustCompile(`^[a-z][a-z0-9_-]{1,31}$`)

var targetKeys = keySet{"url": nil, "kms_key": nil}

// sshKeyKeys is every key of the mapping form of an ssh_keys entry.
var sshKeyKeys = keySet{"key": nil, "expires": nil}

// expiryWarning is how far ahead validation warns about a key's expiry.
const expiryWarning = 30 * 24 * time.Hour

// supplierKeys is every key a supplier file accepts.
var supplierKeys = keySet{
	"name":        nil,
	"email":       nil,
	"allowed_ips": nil,
	"ssh_keys":    nil,
	"destination": targetKeys,
	"egress":      targetKeys,
	"overwrite":   nil,
}

// LoadSuppliers reads every dir/*.yaml and dir/*.yml except dot files.
// root is the directory relative paths resolve against (the config root).
// Errors name files by joining dir, as given, with the file name.
func LoadSuppliers(dir, root string) (*Suppliers, error) {
	s, errs, _ := loadSuppliers(dir, root, time.Now())
	if err := errs.orNil(); err != nil {
		return nil, err
	}
	return s, nil
}

// parsedSupplier is a supplier as read from its file, possibly incomplete,
// with the lines the cross-file checks need.
type parsedSupplier struct {
	*Supplier
	shown    string // file name for messages
	nameLine int
	keyLines []int // line of each of SSHKeys
}

// loadSuppliers loads the supplier files, with warnings as of now.
func loadSuppliers(dir, root string, now time.Time) (*Suppliers, Errors, Errors) {
	absRoot, err := filepath.Abs(root)
	if err != nil {
		return nil, Errors{{File: dir, Msg: err.Error()}}, nil
	}
	var parsed []*parsedSupplier
	errs, warns := loadDir(dir, "suppliers", func(c *checker, f defFile, data []byte) {
		if p := parseSupplier(c, data, f.stem, absRoot, now); p != nil {
			p.File = f.abs
			parsed = append(parsed, p)
		}
	})
	errs = append(errs, crossCheck(parsed)...)
	warns.sort()
	if len(errs) > 0 {
		return nil, errs, warns
	}
	sups := make([]*Supplier, len(parsed))
	for i, p := range parsed {
		sups[i] = p.Supplier
	}
	set := &Suppliers{named: newNamed(sups, func(s *Supplier) string { return s.Name }), warnings: warns}
	return set, nil, warns
}

// crossCheck finds supplier names and SSH keys used in more than one file;
// the later file (in name order) gets the error.
func crossCheck(parsed []*parsedSupplier) Errors {
	var errs Errors
	names, keys := firstSeen{}, firstSeen{}
	for _, p := range parsed {
		if p.Name != "" {
			if first, dup := names.seen(p.Name, place{p.shown, p.nameLine}); dup {
				errs = append(errs, Error{File: p.shown, Line: p.nameLine, Msg: fmt.Sprintf(
					"duplicate supplier name %q (also in %s:%d)", p.Name, first.file, first.line)})
			}
		}
		for i, k := range p.SSHKeys {
			if first, dup := keys.seen(k.Fingerprint, place{p.shown, p.keyLines[i]}); dup {
				errs = append(errs, Error{File: p.shown, Line: p.keyLines[i], Msg: fmt.Sprintf(
					"ssh key %s is also used in %s:%d", k.Fingerprint, first.file, first.line)})
			}
		}
	}
	return errs
}

// parseSupplier validates one supplier file whose name without extension is
// stem. It returns what could be read, even if incomplete, so that the
// cross-file checks still run; nil means nothing could be read. Warnings
// about expiry are as of now.
func parseSupplier(c *checker, data []byte, stem, root string, now time.Time) *parsedSupplier {
	top := c.parse(data)
	if top == nil {
		return nil
	}
	p := &parsedSupplier{Supplier: &Supplier{}, shown: c.file}
	self := field{val: top}
	doc := c.mapping(self, supplierKeys)

	if name, ok := c.required(self, doc, "name"); ok {
		line := valLine(doc["name"])
		switch {
		case !nameSyntax.MatchString(name):
			c.errorf(line, "name %q must match %s (a lowercase letter, then 1-31 of a-z, 0-9, _ and -)", name, nameSyntax)
		case name != stem:
			c.errorf(line, "name %q does not match the file name %q", name, filepath.Base(c.file))
		default:
			p.Name, p.nameLine = name, line
		}
	}

	if email, ok := c.required(self, doc, "email"); ok {
		var err error
		if p.Email, err = parseEmail(email); err != nil {
			c.errorf(valLine(doc["email"]), "email: %v", err)
		}
	}

	for _, it := range c.nonEmptyList(self, doc, "allowed_ips") {
		prefix, err := parsePrefix(it.val)
		if err != nil {
			c.errorf(it.line, "%s: %v", it.path, err)
			continue
		}
		if w := broadPrefix(prefix); w != "" {
			c.warnf(it.line, "%s: %s", it.path, w)
		}
		p.AllowedIPs = append(p.AllowedIPs, prefix)
	}

	for _, e := range c.sshKeyEntries(self, doc) {
		k, err := parseAuthorizedKey(e.key.val)
		if err != nil {
			c.errorf(e.key.line, "%s: %v", e.key.path, err)
			continue
		}
		if e.expires.val != "" {
			if k.Expires, err = parseExpiry(e.expires.val); err != nil {
				c.errorf(e.expires.line, "%s: %v", e.expires.path, err)
				continue
			}
		}
		if i := slices.IndexFunc(p.SSHKeys, func(o AuthorizedKey) bool { return o.Fingerprint == k.Fingerprint }); i >= 0 {
			c.errorf(e.key.line, "%s: duplicate ssh key %s (also at line %d)", e.key.path, k.Fingerprint, p.keyLines[i])
			continue
		}
		for _, w := range keyWarnings(k, now) {
			c.warnf(e.key.line, "%s: %s", e.key.path, w)
		}
		p.SSHKeys = append(p.SSHKeys, k)
		p.keyLines = append(p.keyLines, e.key.line)
	}

	if f, ok := c.need(self, doc, "destination"); ok {
		p.Destination = c.target(f, root)
	}
	if f := doc["egress"]; f.present() {
		t := c.target(f, root)
		p.Egress = &t
	}
	p.Overwrite = c.oneOf(doc["overwrite"], OverwriteAllow, OverwriteAllow, OverwriteDeny, OverwriteVersion)
	return p
}

// sshKeyEntry is one entry of ssh_keys: the key line and, in the mapping
// form, its expiry (val "" when there is none).
type sshKeyEntry struct {
	key, expires item
}

// sshKeyEntries returns the entries of ssh_keys, each either a string (the
// key) or a mapping {key: "...", expires: "2027-03-31"}.
func (c *checker) sshKeyEntries(parent field, fields map[string]field) []sshKeyEntry {
	f, ok := c.need(parent, fields, "ssh_keys")
	if !ok {
		return nil
	}
	n := resolve(f.val)
	if n.Kind != yaml.SequenceNode {
		c.errorf(n.Line, "%s: expected a list, got %s", f.path, describe(n))
		return nil
	}
	if len(n.Content) == 0 {
		c.errorf(f.key.Line, "%s must list at least one entry", f.path)
	}
	var entries []sshKeyEntry
	for i, e := range n.Content {
		e = resolve(e)
		path := fmt.Sprintf("%s[%d]", f.path, i)
		switch {
		case e.Kind == yaml.ScalarNode && e.Tag == "!!str":
			entries = append(entries, sshKeyEntry{key: item{val: e.Value, line: e.Line, path: path}})
		case e.Kind == yaml.MappingNode:
			ef := field{val: e, path: path}
			m := c.mapping(ef, sshKeyKeys)
			key, ok := c.required(ef, m, "key")
			if !ok {
				continue
			}
			entry := sshKeyEntry{key: item{val: key, line: valLine(m["key"]), path: path}}
			if x := m["expires"]; x.present() {
				xn := resolve(x.val)
				// Unquoted, 2027-03-31 is a YAML timestamp; its text is what counts.
				if xn.Kind != yaml.ScalarNode || xn.Tag != "!!str" && xn.Tag != "!!timestamp" {
					c.errorf(xn.Line, "%s: expected a date like 2027-03-31, got %s", x.path, describe(xn))
					continue
				}
				entry.expires = item{val: xn.Value, line: xn.Line, path: x.path}
			}
			entries = append(entries, entry)
		default:
			c.errorf(e.Line, "%s: expected a key line, or a mapping with key and expires, got %s", path, describe(e))
		}
	}
	return entries
}

// parseExpiry reads an expiry: a date (the key works until the end of that
// day, UTC, so the result is the start of the next day) or an RFC 3339 time.
func parseExpiry(s string) (time.Time, error) {
	if d, err := time.Parse(time.DateOnly, s); err == nil {
		return d.AddDate(0, 0, 1), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither a date like 2027-03-31 nor an RFC 3339 time like 2027-03-31T17:00:00Z", s)
}

// DaysLeft is the number of days from now until t, rounded up: 1 for a
// key that expires later today. It is 0 or less once t has passed.
func DaysLeft(t, now time.Time) int {
	d := t.Sub(now)
	if d <= 0 {
		return 0
	}
	return int((d + 24*time.Hour - 1) / (24 * time.Hour))
}

// keyWarnings lists what is risky about a valid key as of now.
func keyWarnings(k AuthorizedKey, now time.Time) []string {
	var ws []string
	switch {
	case k.Type == ssh.KeyAlgoRSA && k.Bits < 3072:
		ws = append(ws, fmt.Sprintf("RSA key %s has %d bits; 3072 or more are recommended (or use ssh-ed25519)", k.Fingerprint, k.Bits))
	case k.Type == ssh.KeyAlgoECDSA256:
		ws = append(ws, fmt.Sprintf("key %s is ECDSA P-256 (%s); prefer ssh-ed25519", k.Fingerprint, k.Type))
	}
	switch k.StatusAt(now, expiryWarning) {
	case KeyExpired:
		ws = append(ws, fmt.Sprintf("key %s expired on %s; it will be refused", k.Fingerprint, k.ExpiryDate()))
	case KeyExpiring:
		ws = append(ws, fmt.Sprintf("key %s expires on %s, in %s", k.Fingerprint, k.ExpiryDate(), plural(DaysLeft(k.Expires, now), "day")))
	}
	return ws
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

// broadPrefix describes why an allowed_ips prefix is risky, or is "".
func broadPrefix(p netip.Prefix) string {
	family, shortest := "IPv4", 8
	if p.Addr().Is6() {
		family, shortest = "IPv6", 16
	}
	switch {
	case p.Bits() == 0:
		return fmt.Sprintf("%s is open to every %s address on the internet", p, family)
	case p.Bits() < shortest:
		return fmt.Sprintf("%s is a very broad range (shorter than /%d for %s)", p, shortest, family)
	}
	return ""
}

// nonEmptyList returns the items of a required list that must not be [].
func (c *checker) nonEmptyList(parent field, fields map[string]field, key string) []item {
	f, ok := c.need(parent, fields, key)
	if !ok {
		return nil
	}
	items, _ := c.list(f)
	if n := resolve(f.val); n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
		c.errorf(f.key.Line, "%s must list at least one entry", f.path)
	}
	return items
}

func (c *checker) target(f field, root string) Target {
	m := c.mapping(f, targetKeys)
	var t Target
	if u, ok := c.required(f, m, "url"); ok {
		var err error
		if t.URL, err = parseStore(u, root); err != nil {
			c.errorf(valLine(m["url"]), "%s: %v", m["url"].path, err)
		}
	}
	t.KMSKey, _ = c.str(m["kms_key"])
	return t
}

// parseAuthorizedKey parses one authorized_keys line without options.
func parseAuthorizedKey(s string) (AuthorizedKey, error) {
	s = strings.TrimSpace(s)
	fields := strings.Fields(s)
	switch {
	case strings.Contains(s, "PRIVATE KEY"):
		return AuthorizedKey{}, errors.New("this is a private key: paste the public key (the .pub file) instead, and replace this key pair, as it has been exposed")
	case strings.HasPrefix(s, "PuTTY-User-Key-File"):
		return AuthorizedKey{}, errors.New("this is a PuTTY private key (.ppk): paste the public key in OpenSSH format instead (PuTTYgen shows it as \"Public key for pasting into OpenSSH authorized_keys file\"), and replace this key pair, as it has been exposed")
	case strings.HasPrefix(s, "---- BEGIN SSH2 PUBLIC KEY"):
		return AuthorizedKey{}, errors.New("this is a public key in RFC 4716 (SSH2) format: convert it to one OpenSSH line with `ssh-keygen -i -f key.pub`")
	case len(fields) > 0 && strings.HasPrefix(fields[0], "ssh-dss"),
		len(fields) > 1 && strings.HasPrefix(fields[1], "ssh-dss"): // after options
		// Checked before parsing: x/crypto no longer parses DSA keys, and
		// would only say the line is not a key.
		return AuthorizedKey{}, errors.New("DSA keys are not accepted: ssh-dss is limited to 1024 bits and no longer supported by OpenSSH; generate an ed25519 key (ssh-keygen -t ed25519) and paste its .pub")
	case strings.ContainsAny(s, "\r\n"):
		// ParseAuthorizedKey would silently skip lines it cannot parse.
		return AuthorizedKey{}, errors.New("must be a single line with one key")
	}
	key, comment, options, _, err := ssh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		return AuthorizedKey{}, fmt.Errorf("not a valid SSH public key: %w", err)
	}
	if len(options) > 0 {
		return AuthorizedKey{}, fmt.Errorf("authorized_keys options are not supported (%s); give only the key", strings.Join(options, ","))
	}
	k := AuthorizedKey{Key: key, Type: key.Type(), Comment: comment, Fingerprint: ssh.FingerprintSHA256(key)}
	if ck, ok := key.(ssh.CryptoPublicKey); ok {
		if rk, ok := ck.CryptoPublicKey().(*rsa.PublicKey); ok {
			k.Bits = rk.N.BitLen()
		}
	}
	// RSA keys shorter than 2048 bits are weak enough to factor.
	if k.Type == ssh.KeyAlgoRSA && k.Bits < 2048 {
		return AuthorizedKey{}, fmt.Errorf("RSA key has %d bits; at least 2048 are required", k.Bits)
	}
	return k, nil
}
