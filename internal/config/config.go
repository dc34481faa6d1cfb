// Package config loads and strictly validates airlock's configuration tree:
// airlock.yaml and one YAML file per supplier in suppliers_dir.
//
// Every problem is reported as "file:line: message", and all problems are
// reported at once (as Errors), so that `airlock validate` in a pull
// request shows everything that needs fixing. Relative paths anywhere in the
// tree, supplier files included, resolve against the directory of
// airlock.yaml (the config root), so a tree can be moved as a whole.
package config

import (
	"errors"
	"os"
	"path"
	"path/filepath"
)

// Config is airlock.yaml with defaults applied, paths made absolute and the
// supplier files loaded.
type Config struct {
	File         string // absolute path of airlock.yaml
	Node         string // defaults to the host name
	SFTP         SFTP
	HTTP         HTTP
	Database     string // "sqlite:<absolute path>" or a postgres URL as written
	Landing      string // absolute path, or a store URL as written
	Quarantine   string // like Landing
	Scanner      Scanner
	Limits       Limits
	SuppliersDir string // absolute
	Suppliers    *Suppliers
}

// SFTP configures the SFTP listener.
type SFTP struct {
	Listen       string
	HostKeys     []string // absolute paths
	TempPatterns []string // path.Match patterns for the base names of uploads in progress
}

// HTTP configures the health, metrics and API listener.
type HTTP struct {
	Listen string
}

// Scanner selects the malware scanner.
type Scanner struct {
	Clamd string // "unix:<absolute path>", "tcp://host:port", or "" for the builtin scanner
}

// Limits bounds what suppliers may upload.
type Limits struct {
	MaxFileSize Size
}

// Defaults for settings left out of airlock.yaml: everything on local disk
// under state/, so that a laptop needs no more than a suppliers directory.
const (
	defaultSFTPListen   = ":2222"
	defaultHostKey      = "state/ssh_host_ed25519_key"
	defaultHTTPListen   = "127.0.0.1:8080"
	defaultDatabase     = "sqlite:state/airlock.db"
	defaultLanding      = "state/landing"
	defaultQuarantine   = "state/quarantine"
	defaultMaxFileSize  = 5 * Size(1e9)
	defaultSuppliersDir = "suppliers"
)

// defaultTempPatterns are the temporary names used by common clients
// (WinSCP, FileZilla, rclone, and generic .tmp).
var defaultTempPatterns = []string{"*.filepart", "*.partial", "*.part", "*.tmp"}

// airlockKeys is every key airlock.yaml accepts.
var airlockKeys = keySet{
	"node":          nil,
	"sftp":          {"listen": nil, "host_keys": nil, "temp_patterns": nil},
	"http":          {"listen": nil},
	"database":      nil,
	"landing":       nil,
	"quarantine":    nil,
	"scanner":       {"clamd": nil},
	"limits":        {"max_file_size": nil},
	"suppliers_dir": nil,
}

// Load reads airlock.yaml at file and every supplier file. On any problem
// it returns Errors with everything found, sorted by file and line. Errors
// name files by the path given here (supplier files by joining it with
// suppliers_dir), so they read like the tree the operator wrote.
func Load(file string) (*Config, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, Errors{{File: file, Msg: err.Error()}}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, Errors{{File: file, Msg: "cannot read: " + pathErr(err)}}
	}
	c := &checker{file: file}
	root := filepath.Dir(abs)
	cfg, suppliersDir := parseConfig(c, data, root)
	cfg.File = abs
	if suppliersDir != "" {
		cfg.SuppliersDir = resolvePath(root, suppliersDir)
		shown := suppliersDir
		if !filepath.IsAbs(shown) {
			shown = filepath.Join(filepath.Dir(file), shown)
		}
		var errs Errors
		cfg.Suppliers, errs = loadSuppliers(shown, root)
		c.errs = append(c.errs, errs...)
	}
	if err := c.errs.orNil(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// IsTempName reports whether the base name of name (a slash-separated SFTP
// path) matches one of SFTP.TempPatterns.
func (c *Config) IsTempName(name string) bool {
	base := path.Base(name)
	for _, p := range c.SFTP.TempPatterns {
		// Patterns were validated at load, so Match cannot fail here.
		if ok, _ := path.Match(p, base); ok {
			return true
		}
	}
	return false
}

// parseConfig validates airlock.yaml into a Config. It returns the
// suppliers_dir as written, or "" when that cannot be determined, so that
// Load can still check the supplier files when other settings are broken.
func parseConfig(c *checker, data []byte, root string) (*Config, string) {
	cfg := &Config{}
	top := c.parse(data)
	if top == nil {
		return cfg, ""
	}
	doc := c.mapping(field{val: top}, airlockKeys)

	cfg.Node, _ = c.str(doc["node"])
	if cfg.Node == "" {
		host, err := os.Hostname()
		if err != nil {
			c.errorf(top.Line, "node is not set and the host name is unknown: %v", err)
		}
		cfg.Node = host
	}

	sftp := c.mapping(doc["sftp"], airlockKeys["sftp"])
	cfg.SFTP.Listen = c.listen(sftp["listen"], defaultSFTPListen)
	cfg.SFTP.HostKeys = []string{resolvePath(root, defaultHostKey)}
	if items, set := c.list(sftp["host_keys"]); set {
		if len(items) == 0 {
			c.errorf(valLine(sftp["host_keys"]), "sftp.host_keys must list at least one key file")
		}
		cfg.SFTP.HostKeys = cfg.SFTP.HostKeys[:0]
		for _, it := range items {
			if it.val == "" {
				c.errorf(it.line, "%s must not be empty", it.path)
				continue
			}
			cfg.SFTP.HostKeys = append(cfg.SFTP.HostKeys, resolvePath(root, it.val))
		}
	}
	cfg.SFTP.TempPatterns = defaultTempPatterns
	if items, set := c.list(sftp["temp_patterns"]); set {
		// An explicit [] is allowed: it turns temporary-name handling off.
		cfg.SFTP.TempPatterns = []string{}
		for _, it := range items {
			if err := parseTempPattern(it.val); err != nil {
				c.errorf(it.line, "%s: %v", it.path, err)
				continue
			}
			cfg.SFTP.TempPatterns = append(cfg.SFTP.TempPatterns, it.val)
		}
	}

	http := c.mapping(doc["http"], airlockKeys["http"])
	cfg.HTTP.Listen = c.listen(http["listen"], defaultHTTPListen)

	cfg.Database = c.value(doc["database"], defaultDatabase, root, parseDatabase)
	cfg.Landing = c.value(doc["landing"], defaultLanding, root, parseStore)
	cfg.Quarantine = c.value(doc["quarantine"], defaultQuarantine, root, parseStore)

	scanner := c.mapping(doc["scanner"], airlockKeys["scanner"])
	cfg.Scanner.Clamd = c.value(scanner["clamd"], "", root, parseClamd)

	limits := c.mapping(doc["limits"], airlockKeys["limits"])
	cfg.Limits.MaxFileSize = defaultMaxFileSize
	if f := limits["max_file_size"]; f.present() {
		switch err := cfg.Limits.MaxFileSize.UnmarshalYAML(f.val); {
		case err != nil:
			c.errorf(valLine(f), "%s: %v", f.path, err)
		case cfg.Limits.MaxFileSize <= 0:
			c.errorf(valLine(f), "%s must be greater than 0", f.path)
		}
	}

	dir, ok := c.str(doc["suppliers_dir"])
	switch {
	case !ok:
		return cfg, ""
	case dir == "":
		dir = defaultSuppliersDir
	}
	return cfg, dir
}

// value returns the string in f (def when unset) normalised by parse, and
// reports parse's error at f's line.
func (c *checker) value(f field, def, root string, parse func(s, root string) (string, error)) string {
	s, ok := c.str(f)
	if !ok {
		return ""
	}
	if s == "" {
		s = def
	}
	v, err := parse(s, root)
	if err != nil {
		c.errorf(valLine(f), "%s: %v", f.path, err)
	}
	return v
}

func (c *checker) listen(f field, def string) string {
	return c.value(f, def, "", func(s, _ string) (string, error) {
		return s, checkHostPort(s, false)
	})
}

// valLine is the line of f's value, for errors about the value itself.
func valLine(f field) int {
	return resolve(f.val).Line
}

// pathErr strips the path from an *fs.PathError's message, because the
// Error that carries it already names the file.
func pathErr(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
