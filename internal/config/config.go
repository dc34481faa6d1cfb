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
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Config is airlock.yaml with defaults applied, paths made absolute and the
// supplier files loaded.
type Config struct {
	File       string // absolute path of airlock.yaml
	Node       string // defaults to the host name
	SFTP       SFTP
	HTTP       HTTP
	Database   string // "sqlite:<absolute path>" or a postgres URL as written
	Landing    string // absolute path, or a store URL as written
	Quarantine string // like Landing
	// QuarantineReleaseApprovals is how many people other than the
	// requester must approve the release of a quarantined file; 0 releases
	// it at once.
	QuarantineReleaseApprovals int
	Scanner                    Scanner
	Limits                     Limits
	SuppliersDir               string // absolute
	Suppliers                  *Suppliers
	// Exports is the push area, like Landing: what dataset users write
	// under <Exports>/<dataset>/ is sent to the dataset's bucket.
	Exports     string
	DatasetsDir string // absolute; a missing directory is no datasets
	Watch       Watch
	RoutesDir   string // absolute; a missing directory is no routes
	Routes      *Routes
	Keys        map[string]string // key services by name: gocloud secrets URLs
	Datasets    *Datasets
	Policy      Policy
	Notify      Notify
	Pipeline    Pipeline
	Audit       Audit
	Console     *Console // nil: no console
	// Warnings lists the risky but legal settings of the whole tree, supplier
	// files included (those are also in Suppliers.Warnings), sorted by file
	// and line.
	Warnings Errors
}

// SFTP configures the SFTP listener.
type SFTP struct {
	Listen       string
	HostKeys     []string // absolute paths
	TempPatterns []string // path.Match patterns for the base names of uploads in progress
	MaxAuthTries int      // authentication attempts per connection, 1-20
	// Algorithms is the SSH algorithm profile: AlgorithmsModern or
	// AlgorithmsCompatible.
	Algorithms string
	// HandshakeTimeout bounds the time from accepting a connection to the
	// end of authentication.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a session that has had no SFTP traffic for this long.
	IdleTimeout time.Duration
	// KeepaliveInterval is how often the server probes an idle client; 0
	// disables keepalives.
	KeepaliveInterval   time.Duration
	MaxConnectionsPerIP int // open connections from one address, >= 1
	MaxUnauthenticated  int // connections not yet authenticated, in total, >= 1
	// MaxUnauthenticatedPerIP and MaxUnauthenticatedPerNetwork cap the
	// connections not yet authenticated from one address and from one /24
	// (IPv4) or /64 (IPv6) network, so that a few addresses cannot fill
	// MaxUnauthenticated.
	MaxUnauthenticatedPerIP      int
	MaxUnauthenticatedPerNetwork int
	Ban                          Ban
	// ReceiptRetention is how long <name>.receipt.json stays in the
	// supplier's home after the outcome; 0 disables receipts.
	ReceiptRetention time.Duration
	// ResumeWindow is how long the bytes of an upload cut off are kept
	// for its client to resume it; 0 disables resume.
	ResumeWindow time.Duration

	// Open file and directory handles, per session, per supplier across
	// its sessions, and per node (0: derived from the descriptor limit).
	MaxHandlesPerSession  int
	MaxHandlesPerSupplier int
	MaxHandlesPerNode     int
	// MaxChannelsPerConnection bounds the sessions open on one connection.
	MaxChannelsPerConnection int
	// WriteStallTimeout closes a connection whose client has not read an
	// answer for this long.
	WriteStallTimeout time.Duration
	// ProxyProtocol, when set, reads client addresses from load balancers.
	ProxyProtocol *ProxyProtocol
	// DrainTimeout is how long the sessions open at a stop (SIGTERM) may
	// run on; those left are then closed, their uploads interrupted.
	DrainTimeout time.Duration
}

// The values of SFTP.Algorithms. Modern offers only AEAD ciphers;
// compatible adds AES-CTR with SHA-2 MACs for clients without them (libssh2
// before 1.11, paramiko before 3), and still no SHA-1 or CBC.
const (
	AlgorithmsModern     = "modern"
	AlgorithmsCompatible = "compatible"
)

// Ban bans an address for Duration after Threshold failed logins from it
// within Window. Threshold 0 disables banning.
type Ban struct {
	Threshold int
	Window    time.Duration
	Duration  time.Duration
}

// HTTP configures the health, metrics and API listener.
type HTTP struct {
	Listen string
}

// Scanner selects the malware scanner.
type Scanner struct {
	Clamd string // "unix:<absolute path>", "tcp://host:port", or "" for the builtin scanner
	// DenyList is the absolute path of the builtin scanner's file of
	// sha256 sums to refuse, or "" for none.
	DenyList string
	// TooLarge is what happens to a file larger than clamd's
	// StreamMaxLength, which clamd cannot scan: TooLargeQuarantine or
	// TooLargeDeliver.
	TooLarge string
}

// The values of Scanner.TooLarge.
const (
	TooLargeQuarantine = "quarantine"
	TooLargeDeliver    = "deliver" // unscanned
)

// Pipeline tunes the durable jobs that scan, deliver and notify.
type Pipeline struct {
	Workers     int // jobs run at once on this node
	MaxAttempts int // attempts per job before its transfer is failed
	// RetryBackoff is the delay before the first retry; it doubles with
	// each attempt, up to MaxBackoff.
	RetryBackoff time.Duration
	MaxBackoff   time.Duration
	// RescueAfter is how long a node may record no heartbeat before its
	// running jobs are started again elsewhere.
	RescueAfter time.Duration
}

// Limits bounds what suppliers may upload and what uploads may cost.
type Limits struct {
	MaxFileSize Size
	// UploadMemory is the memory all uploads together may hold in buffers;
	// beyond it, new uploads wait for running ones to finish.
	UploadMemory Size
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
	defaultUploadMemory = 512 << 20
	defaultSuppliersDir = "suppliers"
	defaultDatasetsDir  = "datasets"
	defaultRoutesDir    = "routes"
	defaultExports      = "state/exports"

	defaultMaxAuthTries        = 6
	defaultHandshakeTimeout    = 30 * time.Second
	defaultIdleTimeout         = 15 * time.Minute
	defaultKeepaliveInterval   = 30 * time.Second
	defaultMaxConnectionsPerIP = 20
	defaultMaxUnauthenticated  = 64
	// Real clients open a few connections at once (rclone: one per
	// transfer and checker); a handshake takes well under a second.
	defaultMaxUnauthenticatedPerIP = 10
	defaultBanThreshold            = 10
	defaultBanWindow               = 10 * time.Minute
	defaultBanDuration             = 15 * time.Minute
	defaultKeyExpiryNotice         = 14 * 24 * time.Hour
	defaultReceiptRetention        = 30 * 24 * time.Hour
	defaultResumeWindow            = 24 * time.Hour
	// Kubernetes kills a pod 30s after SIGTERM by default: the drain
	// leaves the rest of that for settling what it closes.
	defaultDrainTimeout = 20 * time.Second

	// SFTP clients hold a handle or two per transfer, and open one session
	// per connection; these are far beyond what they use.
	defaultMaxHandlesPerSession     = 256
	defaultMaxHandlesPerSupplier    = 1024
	defaultMaxChannelsPerConnection = 4
	defaultWriteStallTimeout        = time.Minute

	defaultMaxAttempts  = 20
	defaultRetryBackoff = time.Second
	defaultMaxBackoff   = 5 * time.Minute
	defaultRescueAfter  = time.Hour
	// minRescueAfter keeps the jobs of a node that paused briefly (or
	// whose database failed over) from being started a second time.
	minRescueAfter = time.Minute
)

// defaultTempPatterns are the temporary names used by common clients
// (WinSCP, FileZilla, rclone, and generic .tmp).
var defaultTempPatterns = []string{"*.filepart", "*.partial", "*.part", "*.tmp"}

// airlockKeys is every key airlock.yaml accepts.
var airlockKeys = keySet{
	"node": nil,
	"sftp": {
		"listen": nil, "host_keys": nil, "temp_patterns": nil,
		"max_auth_tries": nil, "handshake_timeout": nil, "idle_timeout": nil, "keepalive_interval": nil,
		"max_connections_per_ip": nil, "max_unauthenticated": nil,
		"max_unauthenticated_per_ip": nil, "max_unauthenticated_per_network": nil,
		"max_handles_per_session": nil, "max_handles_per_supplier": nil,
		"max_handles_per_node": nil, "max_channels_per_connection": nil, "write_stall_timeout": nil,
		"ban":               {"threshold": nil, "window": nil, "duration": nil},
		"receipt_retention": nil, "resume_window": nil, "algorithms": nil,
		"proxy_protocol": {"trusted": nil, "header_timeout": nil},
		"drain_timeout":  nil,
	},
	"http":                         {"listen": nil},
	"database":                     nil,
	"landing":                      nil,
	"quarantine":                   nil,
	"quarantine_release_approvals": nil,
	"scanner":                      {"clamd": nil, "deny_list": nil, "too_large": nil},
	"limits":                       {"max_file_size": nil, "upload_memory": nil},
	"suppliers_dir":                nil,
	"exports":                      nil,
	"datasets_dir":                 nil,
	"policy":                       policyKeys,
	"notify": {
		"smtp":              {"addr": nil, "from": nil, "username": nil, "password_env": nil, "tls": nil},
		"operators":         nil,
		"key_expiry_notice": nil,
		"webhook":           {"url": nil, "secret_env": nil},
	},
	"watch":      {"every": nil, "webhook_token_env": nil},
	"routes_dir": nil,
	"keys":       nil,
	"pipeline":   {"workers": nil, "max_attempts": nil, "retry_backoff": nil, "max_backoff": nil, "rescue_after": nil},
	"audit":      {"checkpoints": nil, "signing_key": nil, "checkpoint_interval": nil},
	"console":    consoleKeys,
}

// Load reads airlock.yaml at file and every supplier file. On any problem
// it returns Errors with everything found, sorted by file and line. Errors
// name files by the path given here (supplier files by joining it with
// suppliers_dir), so they read like the tree the operator wrote.
//
// The warnings are in Config.Warnings; Check also returns them when there
// are errors.
func Load(file string) (*Config, error) {
	cfg, _, err := Check(file)
	return cfg, err
}

// Check is Load for `airlock validate`: it also returns the warnings of the
// tree when it has errors (cfg is then nil), so that both can be shown in
// one pass. On success, warnings equals cfg.Warnings.
func Check(file string) (cfg *Config, warnings Errors, err error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, nil, Errors{{File: file, Msg: err.Error()}}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, Errors{{File: file, Msg: "cannot read: " + pathErr(err)}}
	}
	c := &checker{file: file}
	root := filepath.Dir(abs)
	cfg, dirs := parseConfig(c, data, root)
	cfg.File = abs
	if dirs.suppliers != "" {
		cfg.SuppliersDir = resolvePath(root, dirs.suppliers)
		var errs, warns Errors
		cfg.Suppliers, errs, warns = loadSuppliers(shownPath(file, dirs.suppliers), root, time.Now())
		c.errs = append(c.errs, errs...)
		c.warns = append(c.warns, warns...)
	}
	if dirs.datasets != "" {
		cfg.DatasetsDir = resolvePath(root, dirs.datasets)
		var errs Errors
		cfg.Datasets, errs = loadDatasets(shownPath(file, dirs.datasets), root, dirs.datasetsSet)
		c.errs = append(c.errs, errs...)
	}
	if dirs.routes != "" {
		cfg.RoutesDir = resolvePath(root, dirs.routes)
		var errs Errors
		cfg.Routes, errs = loadRoutes(shownPath(file, dirs.routes), root, dirs.routesSet, cfg.Keys)
		c.errs = append(c.errs, errs...)
		c.errs = append(c.errs, routesApart(cfg.Routes, cfg.Datasets)...)
	}
	c.warns.sort()
	if err := c.errs.orNil(); err != nil {
		return nil, c.warns, err
	}
	cfg.Warnings = c.warns
	return cfg, c.warns, nil
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
// directories of definitions, so that Load can still check the supplier
// and dataset files when other settings are broken.
func parseConfig(c *checker, data []byte, root string) (*Config, treeDirs) {
	cfg := &Config{}
	top := c.parse(data)
	if top == nil {
		return cfg, treeDirs{}
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
	cfg.QuarantineReleaseApprovals = c.integer(doc["quarantine_release_approvals"], 1, 0, maxApproval)

	cfg.Scanner = parseScanner(c, c.mapping(doc["scanner"], airlockKeys["scanner"]), root)

	parseSFTPLimits(c, sftp, &cfg.SFTP)
	cfg.SFTP.ReceiptRetention = c.duration(sftp["receipt_retention"], defaultReceiptRetention, true)
	cfg.SFTP.ResumeWindow = c.duration(sftp["resume_window"], defaultResumeWindow, true)
	cfg.SFTP.ProxyProtocol = parseProxyProtocol(c, sftp["proxy_protocol"])
	cfg.SFTP.DrainTimeout = c.duration(sftp["drain_timeout"], defaultDrainTimeout, true)
	cfg.Notify = parseNotify(c, c.mapping(doc["notify"], airlockKeys["notify"]))
	cfg.Pipeline = parsePipeline(c, c.mapping(doc["pipeline"], airlockKeys["pipeline"]))
	cfg.Audit = parseAudit(c, c.mapping(doc["audit"], airlockKeys["audit"]), root)
	cfg.Console = parseConsole(c, doc["console"], root)
	checkCluster(c, cfg, doc, sftp)

	limits := c.mapping(doc["limits"], airlockKeys["limits"])
	cfg.Limits.MaxFileSize = c.positiveSize(limits["max_file_size"], defaultMaxFileSize)
	cfg.Limits.UploadMemory = c.positiveSize(limits["upload_memory"], defaultUploadMemory)

	cfg.Exports = c.value(doc["exports"], defaultExports, root, parseStore)
	cfg.Watch = parseWatch(c, c.mapping(doc["watch"], airlockKeys["watch"]))
	cfg.Keys = parseKeys(c, doc["keys"])
	cfg.Policy = parsePolicy(c, doc["policy"])
	return cfg, treeDirs{
		suppliers: c.dir(doc["suppliers_dir"], defaultSuppliersDir),
		datasets:  c.dir(doc["datasets_dir"], defaultDatasetsDir),
		// A datasets_dir written out must exist: a typo must not pass.
		datasetsSet: doc["datasets_dir"].present(),
		routes:      c.dir(doc["routes_dir"], defaultRoutesDir),
		routesSet:   doc["routes_dir"].present(),
	}
}

// parseSFTPLimits reads the connection limits of the sftp section.
func parseSFTPLimits(c *checker, sftp map[string]field, s *SFTP) {
	s.MaxAuthTries = c.integer(sftp["max_auth_tries"], defaultMaxAuthTries, 1, 20)
	s.Algorithms = c.oneOf(sftp["algorithms"], AlgorithmsCompatible, AlgorithmsModern, AlgorithmsCompatible)
	s.HandshakeTimeout = c.duration(sftp["handshake_timeout"], defaultHandshakeTimeout, false)
	s.IdleTimeout = c.duration(sftp["idle_timeout"], defaultIdleTimeout, false)
	s.KeepaliveInterval = c.duration(sftp["keepalive_interval"], defaultKeepaliveInterval, true)
	s.MaxConnectionsPerIP = c.integer(sftp["max_connections_per_ip"], defaultMaxConnectionsPerIP, 1, 0)
	s.MaxUnauthenticated = c.integer(sftp["max_unauthenticated"], defaultMaxUnauthenticated, 1, 0)
	s.MaxUnauthenticatedPerIP = c.integer(sftp["max_unauthenticated_per_ip"], defaultMaxUnauthenticatedPerIP, 1, 0)
	// By default no network holds more than a quarter of the pool.
	s.MaxUnauthenticatedPerNetwork = c.integer(sftp["max_unauthenticated_per_network"], max(1, s.MaxUnauthenticated/4), 1, 0)
	s.MaxHandlesPerSession = c.integer(sftp["max_handles_per_session"], defaultMaxHandlesPerSession, 1, 0)
	s.MaxHandlesPerSupplier = c.integer(sftp["max_handles_per_supplier"], defaultMaxHandlesPerSupplier, 1, 0)
	s.MaxHandlesPerNode = c.integer(sftp["max_handles_per_node"], 0, 1, 0)
	s.MaxChannelsPerConnection = c.integer(sftp["max_channels_per_connection"], defaultMaxChannelsPerConnection, 1, 0)
	s.WriteStallTimeout = c.duration(sftp["write_stall_timeout"], defaultWriteStallTimeout, false)
	ban := c.mapping(sftp["ban"], airlockKeys["sftp"]["ban"])
	s.Ban.Threshold = c.integer(ban["threshold"], defaultBanThreshold, 0, -1)
	s.Ban.Window = c.duration(ban["window"], defaultBanWindow, false)
	s.Ban.Duration = c.duration(ban["duration"], defaultBanDuration, false)
}

// parseScanner reads the scanner section.
func parseScanner(c *checker, scanner map[string]field, root string) Scanner {
	s := Scanner{
		Clamd:    c.value(scanner["clamd"], "", root, parseClamd),
		DenyList: c.value(scanner["deny_list"], "", root, parseDenyList),
		TooLarge: c.oneOf(scanner["too_large"], TooLargeQuarantine, TooLargeQuarantine, TooLargeDeliver),
	}
	if s.DenyList != "" && s.Clamd != "" {
		c.warnf(valLine(scanner["deny_list"]), "scanner.deny_list is ignored: only the builtin scanner reads it, and scanner.clamd is set")
	}
	if s.TooLarge == TooLargeDeliver {
		c.warnf(valLine(scanner["too_large"]), "scanner.too_large: %q: a file larger than clamd's StreamMaxLength is delivered without being scanned", s.TooLarge)
	}
	return s
}

// defaultWorkers gives the pipeline half of the CPUs this process may use:
// its scans and copies are CPU-bound, and with more jobs at once the files
// that finished first take the cores that sessions still receiving need.
// It takes two at least, so that one long delivery does not hold up every
// other file.
func defaultWorkers() int { return max(2, runtime.GOMAXPROCS(0)/2) }

// parsePipeline reads the pipeline section.
func parsePipeline(c *checker, pipeline map[string]field) Pipeline {
	p := Pipeline{
		Workers:     c.integer(pipeline["workers"], defaultWorkers(), 1, 64),
		MaxAttempts: c.integer(pipeline["max_attempts"], defaultMaxAttempts, 1, 1000),
		RescueAfter: c.duration(pipeline["rescue_after"], defaultRescueAfter, false),
	}
	if p.RescueAfter < minRescueAfter {
		c.errorf(valLine(pipeline["rescue_after"]), "pipeline.rescue_after must be at least %s, got %s", FormatDays(minRescueAfter), FormatDays(p.RescueAfter))
	}
	before := len(c.errs)
	p.RetryBackoff = c.duration(pipeline["retry_backoff"], defaultRetryBackoff, false)
	p.MaxBackoff = c.duration(pipeline["max_backoff"], defaultMaxBackoff, false)
	// Compare only what was written and parsed: a default standing in for
	// a broken value would add a second, confusing error.
	if len(c.errs) == before && p.MaxBackoff < p.RetryBackoff {
		blame, note := pipeline["max_backoff"], ""
		if !blame.present() {
			blame, note = pipeline["retry_backoff"], ", the default"
		}
		c.errorf(valLine(blame), "pipeline.max_backoff (%s%s) must be at least retry_backoff (%s)", FormatDays(p.MaxBackoff), note, FormatDays(p.RetryBackoff))
	}
	return p
}

// IsLoopback reports whether host (from host:port) is this machine: the
// one place a cleartext protocol (SMTP without TLS, a webhook over http)
// is allowed.
func IsLoopback(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
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

// positiveSize reads a size greater than zero, or def when f is absent.
func (c *checker) positiveSize(f field, def Size) Size {
	if !f.present() {
		return def
	}
	var v Size
	switch err := v.UnmarshalYAML(f.val); {
	case err != nil:
		c.errorf(valLine(f), "%s: %v", f.path, err)
	case v <= 0:
		c.errorf(valLine(f), "%s must be greater than 0", f.path)
	default:
		return v
	}
	return def
}
