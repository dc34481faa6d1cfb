package config

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// A Route is routes/<name>.yaml: the egress table's columns as keys. When
// its flag appears under Source, every other object there is sent to
// Destination as one batch (without a flag, each object on its own), through
// the transforms asked for.
type Route struct {
	Name string
	// Source is the watched prefix: a store URL or a path; "$TODAYS_DATE"
	// in it stands for the UTC date (yyyy-mm-dd) of the day it is watched.
	Source string
	Flag   string // the flag object's name below Source; "" sends each object on arrival
	// Decrypt: the objects are envelope-encrypted (metadata
	// datakeyencryptionkeyid, ciphertext, iv) and sent decrypted; the
	// data key is unwrapped by keys.dks.
	Decrypt bool
	// Rewrap is the recipient's RSA public key file (PEM): the data key is
	// re-encrypted for it and the body sent still encrypted.
	Rewrap   string
	Encrypt  Encrypt
	Compress string // gzip, zstd or "" (none)
	// Destination is a store URL or path, or an https:// receiver; it may
	// hold $TODAYS_DATE too.
	Destination string
	KMSKey      string   // SSE-KMS key of an s3:// destination
	TLS         TLSFiles // client certificate and CA of an https:// destination
	Recipient   string   // who receives it, for people reading the ledger
	Notify      []string // email addresses told of each batch's outcome
	Approval    int      // people, other than the writer, who must approve each batch
	// Release makes the route a release inbox: its flag is the manifest
	// `airlock release` writes last (ReleaseManifest), and a batch is sent
	// only when the files under the prefix are exactly the manifest's
	// (names, sizes, sha256) and scan clean; its transfers are releases.
	Release bool
	File    string // absolute path of the route file
}

// ReleaseManifest is the manifest `airlock release` writes last, the flag
// of a release inbox.
const ReleaseManifest = "airlock-manifest.json"

// Encrypt is a route's encryption for its recipient: age recipients or
// one OpenPGP public key file, never both.
type Encrypt struct {
	Age []string
	PGP string // absolute path of an armored public key
}

// TLSFiles are the absolute paths of a client certificate, its key and
// the CA that must have signed the receiver's certificate.
type TLSFiles struct{ Cert, Key, CA string }

// HTTPS reports whether the route sends to an https:// receiver.
func (r *Route) HTTPS() bool { return strings.HasPrefix(r.Destination, "https://") }

// TodaysDate is the placeholder for the UTC date in a route's source and
// destination.
const TodaysDate = "$TODAYS_DATE"

// Routes is an immutable set of routes, looked up by name.
type Routes struct {
	named[Route]
}

var (
	// routeNameSyntax is the egress table's pipeline names: lower case,
	// digits, _ and -.
	routeNameSyntax = regexp.MustCompile(`^[a-z][a-z0-9_-]{1,62}$`)
	// ageRecipientSyntax is an age X25519 recipient (bech32).
	ageRecipientSyntax = regexp.MustCompile(`^age1[02-9ac-hj-np-z]{58}$`)
	// placeholderRef is anything that looks like a $NAME in a source or
	// destination: only TodaysDate is one.
	placeholderRef = regexp.MustCompile(`\$[A-Za-z_{]`)
)

// routeKeys is every key a route file accepts.
var routeKeys = keySet{
	"name": nil, "source": nil, "flag": nil, "decrypt": nil, "rewrap": nil,
	"encrypt": {"age": nil, "pgp": nil}, "compress": nil, "destination": nil,
	"kms_key": nil, "tls": {"cert": nil, "key": nil, "ca": nil}, "recipient": nil,
	"notify": nil, "approval": nil, "release": nil,
}

// loadRoutes loads the route files; a missing dir is an error only when
// mustExist. keys are the key services airlock.yaml names.
func loadRoutes(dir, root string, mustExist bool, keys map[string]string) (*Routes, Errors) {
	absRoot, skip, errs := openDefs(dir, root, mustExist)
	if skip || errs != nil {
		return &Routes{}, errs
	}
	var routes []*Route
	names := firstSeen{}
	errs, _ = loadDir(dir, "routes", func(c *checker, f defFile, data []byte) {
		r, nameLine := parseRoute(c, data, f.stem, absRoot, keys)
		if r == nil {
			return
		}
		r.File = f.abs
		if first, dup := names.seen(r.Name, place{f.shown, nameLine}); r.Name != "" && dup {
			c.errorf(nameLine, "duplicate route name %q (also in %s:%d)", r.Name, first.file, first.line)
		}
		routes = append(routes, r)
	})
	if len(errs) > 0 {
		return nil, errs
	}
	return &Routes{named: newNamed(routes, func(r *Route) string { return r.Name })}, nil
}

// parseRoute validates one route file whose name without extension is
// stem, and returns it with the line of its name; nil when unreadable.
func parseRoute(c *checker, data []byte, stem, root string, keys map[string]string) (*Route, int) {
	top := c.parse(data)
	if top == nil {
		return nil, 0
	}
	r := &Route{}
	self := field{val: top}
	doc := c.mapping(self, routeKeys)
	nameLine := valLine(doc["name"])
	if name, ok := c.required(self, doc, "name"); ok {
		switch {
		case !routeNameSyntax.MatchString(name):
			c.errorf(nameLine, "name %q must match %s", name, routeNameSyntax)
		case name != stem:
			c.errorf(nameLine, "name %q does not match the file name %q", name, filepath.Base(c.file))
		default:
			r.Name = name
		}
	}
	if _, ok := c.required(self, doc, "source"); ok {
		r.Source = c.value(doc["source"], "", root, datedStore)
	}
	if _, ok := c.required(self, doc, "destination"); ok {
		r.Destination = c.value(doc["destination"], "", root, parseDestination)
	}
	r.Flag = c.checked(doc["flag"], checkFlagName)
	r.Decrypt = c.boolean(doc["decrypt"], false)
	r.Rewrap = c.existing(doc["rewrap"], root)
	r.Encrypt = parseEncrypt(c, doc["encrypt"], root)
	r.Compress = c.oneOf(doc["compress"], "", "gzip", "zstd", "none")
	if r.Compress == "none" {
		r.Compress = ""
	}
	r.KMSKey = c.checked(doc["kms_key"], checkKMSKeyARN)
	r.TLS = parseTLSFiles(c, doc["tls"], root)
	r.Recipient, _ = c.str(doc["recipient"])
	if items, _ := c.list(doc["notify"]); items != nil {
		for _, it := range items {
			if a, err := parseEmail(it.val); err != nil {
				c.errorf(it.line, "%s: %v", it.path, err)
			} else {
				r.Notify = append(r.Notify, a)
			}
		}
	}
	r.Approval = c.integer(doc["approval"], 0, 0, maxApproval)
	if r.Release = c.boolean(doc["release"], false); r.Release {
		if r.Flag != "" && r.Flag != ReleaseManifest {
			c.errorf(doc["flag"].key.Line, "a release inbox's flag is %s, the manifest airlock release writes last", ReleaseManifest)
		}
		r.Flag = ReleaseManifest
	}
	checkRouteCombination(c, r, doc, keys)
	return r, nameLine
}

// checkRouteCombination reports keys that do not go together.
func checkRouteCombination(c *checker, r *Route, doc map[string]field, keys map[string]string) {
	line := func(k string) int { return doc[k].key.Line }
	if (r.Decrypt || r.Rewrap != "") && keys[DataKeyService] == "" {
		k := "decrypt"
		if r.Rewrap != "" {
			k = "rewrap"
		}
		c.errorf(line(k), "%s needs the key service that unwraps data keys: add keys.%s to airlock.yaml", k, DataKeyService)
	}
	if r.Rewrap != "" && (r.Decrypt || r.Compress != "" || r.Encrypt.PGP != "" || len(r.Encrypt.Age) > 0) {
		c.errorf(line("rewrap"), "rewrap sends the body still encrypted: it cannot be combined with decrypt, compress or encrypt")
	}
	https := r.HTTPS()
	if tls := doc["tls"]; https && !tls.present() {
		c.errorf(line("destination"), "an https:// destination needs tls: {cert, key, ca} (mutual TLS)")
	} else if !https && tls.present() {
		c.errorf(tls.key.Line, "tls applies only to an https:// destination")
	}
	if k := doc["kms_key"]; k.present() && !strings.HasPrefix(r.Destination, "s3://") {
		c.errorf(k.key.Line, "kms_key applies only to an s3:// destination")
	}
}

// DataKeyService is the name, under keys: in airlock.yaml, of the key
// service that unwraps envelope data keys.
const DataKeyService = "dks"

// datedStore is parseStore for a location that may hold $TODAYS_DATE and
// no other placeholderRef.
func datedStore(s, root string) (string, error) {
	if m := placeholderRef.FindString(strings.ReplaceAll(s, TodaysDate, "")); m != "" {
		return "", fmt.Errorf("%q: the only placeholder is %s", s, TodaysDate)
	}
	return parseStore(s, root)
}

// parseDestination accepts what datedStore does, or an https:// URL.
func parseDestination(s, root string) (string, error) {
	if !strings.HasPrefix(s, "https://") {
		if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
			return "", fmt.Errorf("%q: postgres:// destinations are not supported yet", s)
		}
		return datedStore(s, root)
	}
	u, err := url.Parse(strings.ReplaceAll(s, TodaysDate, "2006-01-02"))
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("%q is not an https://host[:port]/path URL", s)
	}
	return s, nil
}

// checkFlagName accepts a file name: no slash, not . or ...
func checkFlagName(s string) error {
	if strings.Contains(s, "/") || s == "." || s == ".." {
		return fmt.Errorf("%q must be a file name directly below the source prefix", s)
	}
	return nil
}

// existing reads the path of an existing file, "" when f is unset.
func (c *checker) existing(f field, root string) string {
	if !f.present() {
		return ""
	}
	return c.value(f, "", root, existingFile)
}

// existingFile resolves p against root and checks that it is a file.
func existingFile(p, root string) (string, error) {
	abs := resolvePath(root, p)
	fi, err := os.Stat(abs)
	switch {
	case err != nil:
		return "", fmt.Errorf("%q: %s", p, pathErr(err))
	case fi.IsDir():
		return "", fmt.Errorf("%q is a directory, not a file", p)
	}
	return abs, nil
}

func parseEncrypt(c *checker, f field, root string) Encrypt {
	var e Encrypt
	if !f.present() {
		return e
	}
	m := c.mapping(f, routeKeys["encrypt"])
	if items, _ := c.list(m["age"]); items != nil {
		for _, it := range items {
			if !ageRecipientSyntax.MatchString(it.val) {
				c.errorf(it.line, "%s: %q is not an age recipient (age1…)", it.path, it.val)
				continue
			}
			e.Age = append(e.Age, it.val)
		}
	}
	e.PGP = c.existing(m["pgp"], root)
	if len(e.Age) > 0 && e.PGP != "" || m["age"].present() == m["pgp"].present() {
		c.errorf(valLine(f), "encrypt takes age recipients or one pgp key file, exactly one of them")
	}
	return e
}

func parseTLSFiles(c *checker, f field, root string) TLSFiles {
	var t TLSFiles
	if !f.present() {
		return t
	}
	m := c.mapping(f, routeKeys["tls"])
	for _, k := range []struct {
		key string
		dst *string
	}{{"cert", &t.Cert}, {"key", &t.Key}, {"ca", &t.CA}} {
		if _, ok := c.required(f, m, k.key); ok {
			*k.dst = c.existing(m[k.key], root)
		}
	}
	return t
}

// Watch returns where the route's source is on date (yyyy-mm-dd): the
// store location up to the directory holding $TODAYS_DATE, and the key
// prefix below it with the date filled in, a directory (ending in "/").
// A source without the placeholder is watched whole.
func (r *Route) Watch(date string) (location, prefix string) {
	location, prefix = splitDated(r.Source, date)
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/" // a path lost its slash when made absolute
	}
	return location, prefix
}

// splitDated splits a location at the directory that holds $TODAYS_DATE.
func splitDated(location, date string) (string, string) {
	u, err := url.Parse(location)
	isURL := err == nil && urlScheme.MatchString(location)
	p := location
	if isURL {
		p = u.Path
	}
	i := strings.Index(p, TodaysDate)
	if i < 0 {
		return location, ""
	}
	cut := strings.LastIndex(p[:i], "/") + 1
	base, prefix := p[:cut], strings.ReplaceAll(p[cut:], TodaysDate, date)
	if !isURL {
		return strings.TrimSuffix(base, "/"), prefix
	}
	u.Path = strings.TrimSuffix(base, "/")
	return u.String(), prefix
}

// RoutesApart is routesApart for a reload: nil when no route has a
// dataset's name.
func RoutesApart(routes *Routes, datasets *Datasets) error {
	return routesApart(routes, datasets).orNil()
}

// routesApart reports routes named like a dataset: transfers name their
// route, which must say which one it is.
func routesApart(routes *Routes, datasets *Datasets) Errors {
	var errs Errors
	if routes == nil || datasets == nil {
		return nil
	}
	for _, r := range routes.All() {
		if d, ok := datasets.Lookup(r.Name); ok {
			errs = append(errs, Error{File: r.File, Line: 1, Msg: fmt.Sprintf("route name %q is also the name of the dataset in %s: rename one", r.Name, d.File)})
		}
	}
	return errs
}

// Deliver splits an https:// destination like Watch a source: the base URL
// up to the directory holding $TODAYS_DATE, and the rest, still holding
// it (a file's path goes below the rest, dated by the day it was queued).
func (r *Route) Deliver() (base, prefix string) {
	return splitDated(r.Destination, TodaysDate)
}
