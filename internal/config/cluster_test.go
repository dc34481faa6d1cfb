package config

import (
	"path/filepath"
	"testing"
)

func TestClusterChecks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		dir         string
		errs, warns []string
	}{
		{dir: "testdata/cluster-shared"},
		{
			dir: "testdata/cluster-local",
			errs: []string{
				`airlock.yaml:8: quarantine: "state/quarantine" (the default) is on this node's disk, and with a postgres database another node may scan or deliver what this node received, and cannot read it there; use an s3://, gs:// or azblob:// URL shared by every node`,
				`airlock.yaml:9: landing: "file:///srv/airlock/landing" is on this node's disk, and with a postgres database another node may scan or deliver what this node received, and cannot read it there; use an s3://, gs:// or azblob:// URL shared by every node`,
			},
			warns: []string{
				`airlock.yaml:6: warning: sftp.host_keys[0]: "/var/lib/airlock/node-a/ssh_host_ed25519_key" has this node's name (node-a) in its path, so each node would present its own key and clients would see the host key change from one connection to the next; with a postgres database, mount the same key files on every node (one Kubernetes Secret)`,
				`airlock.yaml:7: warning: sftp.host_keys[1]: "state/ssh_host_ecdsa_key" does not exist and would be generated on first start, so each node would present its own key and clients would see the host key change from one connection to the next; with a postgres database, mount the same key files on every node (one Kubernetes Secret)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			t.Parallel()
			dir, err := filepath.Abs(tt.dir)
			if err != nil {
				t.Fatal(err)
			}
			_, warns, err := Check(filepath.Join(dir, "airlock.yaml"))
			diffLines(t, messages(t, err, dir), tt.errs)
			diffLines(t, messages(t, warns, dir), tt.warns)
		})
	}
}

// TestClusterChecksSQLite: one node on SQLite keeps everything local
// without a word.
func TestClusterChecksSQLite(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{
		"airlock.yaml":        "node: node-a\nsftp:\n  host_keys: [state/node-a/key]\n",
		"suppliers/acme.yaml": acmeYAML,
	})
	_, warns, err := Check(filepath.Join(dir, "airlock.yaml"))
	diffLines(t, messages(t, err, dir), nil)
	diffLines(t, messages(t, warns, dir), nil)
}
