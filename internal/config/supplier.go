package config

import (
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

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
	File        string  // absolute path of the supplier file
}

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
	Comment     string
	Fingerprint string // ssh.FingerprintSHA256
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

// Suppliers is an immutable set of suppliers; share it freely between
// goroutines.
type Suppliers struct {
	byName map[string]*Supplier
	sorted []*Supplier
}

// Lookup returns the supplier with the given name (the SFTP user name).
func (s *Suppliers) Lookup(name string) (*Supplier, bool) {
	sup, ok := s.byName[name]
	return sup, ok
}

// All returns the suppliers sorted by name. The slice is a copy; the
// suppliers themselves must not be modified.
func (s *Suppliers) All() []*Supplier {
	return slices.Clone(s.sorted)
}

func (s *Suppliers) Len() int {
	return len(s.sorted)
}

var nameSyntax = regexp.MustCompile(`^[a-z][a-z0-9_-]{1,31}$`)

var targetKeys = keySet{"url": nil, "kms_key": nil}

// supplierKeys is every key a supplier file accepts.
var supplierKeys = keySet{
	"name":        nil,
	"email":       nil,
	"allowed_ips": nil,
	"ssh_keys":    nil,
	"destination": targetKeys,
	"egress":      targetKeys,
}

// LoadSuppliers reads every dir/*.yaml and dir/*.yml except dot files.
// root is the directory relative paths resolve against (the config root).
// Errors name files by joining dir, as given, with the file name.
func LoadSuppliers(dir, root string) (*Suppliers, error) {
	s, errs := loadSuppliers(dir, root)
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

func loadSuppliers(dir, root string) (*Suppliers, Errors) {
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return nil, Errors{{File: dir, Msg: err.Error()}}
	}
	absRoot, err := filepath.Abs(root)
	if err != nil {
		return nil, Errors{{File: dir, Msg: err.Error()}}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, Errors{{File: dir, Msg: "cannot read suppliers directory: " + pathErr(err)}}
	}
	var errs Errors
	var parsed []*parsedSupplier
	for _, e := range entries { // sorted by name, so messages are stable
		name := e.Name()
		if !isSupplierFile(name) {
			continue
		}
		shown := filepath.Join(dir, name)
		// ReadFile follows symlinks, as Kubernetes mounts files via ..data.
		data, err := os.ReadFile(shown)
		if err != nil {
			errs = append(errs, Error{File: shown, Msg: "cannot read: " + pathErr(err)})
			continue
		}
		c := &checker{file: shown}
		p := parseSupplier(c, data, strings.TrimSuffix(name, filepath.Ext(name)), absRoot)
		errs = append(errs, c.errs...)
		if p != nil {
			p.File = filepath.Join(absDir, name)
			parsed = append(parsed, p)
		}
	}
	errs = append(errs, crossCheck(parsed)...)
	if len(errs) > 0 {
		return nil, errs
	}
	set := &Suppliers{byName: make(map[string]*Supplier, len(parsed))}
	for _, p := range parsed {
		set.byName[p.Name] = p.Supplier
		set.sorted = append(set.sorted, p.Supplier)
	}
	slices.SortFunc(set.sorted, func(a, b *Supplier) int { return strings.Compare(a.Name, b.Name) })
	return set, nil
}

// crossCheck finds supplier names and SSH keys used in more than one file;
// the later file (in name order) gets the error.
func crossCheck(parsed []*parsedSupplier) Errors {
	type use struct {
		p    *parsedSupplier
		line int
	}
	var errs Errors
	names := map[string]use{}
	keys := map[string]use{}
	for _, p := range parsed {
		if p.Name != "" {
			if first, dup := names[p.Name]; dup {
				errs = append(errs, Error{p.shown, p.nameLine, fmt.Sprintf(
					"duplicate supplier name %q (also in %s:%d)", p.Name, first.p.shown, first.line)})
			} else {
				names[p.Name] = use{p, p.nameLine}
			}
		}
		for i, k := range p.SSHKeys {
			if first, dup := keys[k.Fingerprint]; dup {
				errs = append(errs, Error{p.shown, p.keyLines[i], fmt.Sprintf(
					"ssh key %s is also used in %s:%d", k.Fingerprint, first.p.shown, first.line)})
			} else {
				keys[k.Fingerprint] = use{p, p.keyLines[i]}
			}
		}
	}
	return errs
}

// parseSupplier validates one supplier file whose name without extension is
// stem. It returns what could be read, even if incomplete, so that the
// cross-file checks still run; nil means nothing could be read.
func parseSupplier(c *checker, data []byte, stem, root string) *parsedSupplier {
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
		p.AllowedIPs = append(p.AllowedIPs, prefix)
	}

	for _, it := range c.nonEmptyList(self, doc, "ssh_keys") {
		k, err := parseAuthorizedKey(it.val)
		if err != nil {
			c.errorf(it.line, "%s: %v", it.path, err)
			continue
		}
		if i := slices.IndexFunc(p.SSHKeys, func(o AuthorizedKey) bool { return o.Fingerprint == k.Fingerprint }); i >= 0 {
			c.errorf(it.line, "%s: duplicate ssh key %s (also at line %d)", it.path, k.Fingerprint, p.keyLines[i])
			continue
		}
		p.SSHKeys = append(p.SSHKeys, k)
		p.keyLines = append(p.keyLines, it.line)
	}

	if f, ok := c.need(self, doc, "destination"); ok {
		p.Destination = c.target(f, root)
	}
	if f := doc["egress"]; f.present() {
		t := c.target(f, root)
		p.Egress = &t
	}
	return p
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
	switch {
	case strings.Contains(s, "PRIVATE KEY"):
		return AuthorizedKey{}, errors.New("this is a private key: paste the public key (the .pub file) instead, and replace this key pair, as it has been exposed")
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
	if err := checkKeyStrength(key); err != nil {
		return AuthorizedKey{}, err
	}
	return AuthorizedKey{Key: key, Comment: comment, Fingerprint: ssh.FingerprintSHA256(key)}, nil
}

// checkKeyStrength rejects RSA keys shorter than 2048 bits, which are weak
// enough to factor. (DSA keys no longer parse at all.)
func checkKeyStrength(key ssh.PublicKey) error {
	if ck, ok := key.(ssh.CryptoPublicKey); ok {
		if rk, ok := ck.CryptoPublicKey().(*rsa.PublicKey); ok && rk.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key has %d bits; at least 2048 are required", rk.N.BitLen())
		}
	}
	return nil
}
