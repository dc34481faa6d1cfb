package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// A Postgres database is what lets several nodes share one ledger, so it
// is taken as the sign of a cluster: every node must then be able to read
// what any other node wrote, and present the same host keys.

// checkCluster checks, for a Postgres database, that landing and
// quarantine are shared stores and that the host keys are not this node's
// own. doc and sftp are the fields of airlock.yaml and its sftp section.
func checkCluster(c *checker, cfg *Config, doc, sftp map[string]field) {
	if !isPostgres(cfg.Database) {
		return
	}
	for _, key := range []string{"landing", "quarantine"} {
		store := cfg.Landing
		if key == "quarantine" {
			store = cfg.Quarantine
		}
		if store == "" || !isLocalStore(store) {
			continue
		}
		f, shown := doc[key], ""
		if !f.present() {
			// The default is to blame, and the database that makes it wrong.
			f, shown = doc["database"], " (the default)"
		}
		c.errorf(valLine(f), "%s: %q%s is on this node's disk, and with a postgres database another node may scan or deliver what this node received, and cannot read it there; use an s3://, gs:// or azblob:// URL shared by every node", key, store, shown)
	}
	for i, p := range cfg.SFTP.HostKeys {
		f := sftp["host_keys"]
		line := valLine(doc["database"])
		if f.present() {
			line = hostKeyLine(f, i)
		}
		if why := perNodeHostKey(p, cfg.Node); why != "" {
			c.warnf(line, "sftp.host_keys[%d]: %q %s, so each node would present its own key and clients would see the host key change from one connection to the next; with a postgres database, mount the same key files on every node (one Kubernetes Secret)", i, p, why)
		}
	}
}

// isPostgres reports whether database (as Config.Database holds it) is a
// Postgres URL.
func isPostgres(database string) bool {
	return strings.HasPrefix(database, "postgres://") || strings.HasPrefix(database, "postgresql://")
}

// isLocalStore reports whether store (as Config.Landing holds it) lives in
// this process or on this machine's disk.
func isLocalStore(store string) bool {
	return filepath.IsAbs(store) || strings.HasPrefix(store, "file:") || strings.HasPrefix(store, "mem:")
}

// perNodeHostKey says why the host key at p is likely this node's own, or
// returns "": a key that does not exist yet is generated on first start, by
// each node for itself, and a path naming the node is one per node.
func perNodeHostKey(p, node string) string {
	if node != "" && slices.Contains(strings.Split(filepath.ToSlash(p), "/"), node) {
		return "has this node's name (" + node + ") in its path"
	}
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		return "does not exist and would be generated on first start"
	}
	return ""
}

// hostKeyLine is the line of the i-th entry of sftp.host_keys.
func hostKeyLine(f field, i int) int {
	n := resolve(f.val)
	if i < len(n.Content) {
		return resolve(n.Content[i]).Line
	}
	return n.Line
}
