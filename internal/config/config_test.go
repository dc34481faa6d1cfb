package config

import (
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLoadValid(t *testing.T) {
	t.Parallel()
	cfg, err := Load("testdata/valid/airlock.yaml")
	if err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs("testdata/valid")
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		File: filepath.Join(root, "airlock.yaml"),
		Node: "node-1",
		SFTP: SFTP{
			Listen:       "0.0.0.0:2222",
			HostKeys:     []string{filepath.Join(root, "state/ssh_host_ed25519_key"), "/etc/airlock/ssh_host_ecdsa_key"},
			TempPatterns: []string{"*.filepart", "*.partial", "*.part", "*.tmp"},
			// The defaults of the connection limits:
			MaxAuthTries:            6,
			Algorithms:              AlgorithmsCompatible,
			HandshakeTimeout:        30 * time.Second,
			IdleTimeout:             15 * time.Minute,
			KeepaliveInterval:       30 * time.Second,
			MaxConnectionsPerIP:     20,
			MaxUnauthenticated:      64,
			MaxUnauthenticatedPerIP: 10, MaxUnauthenticatedPerNetwork: 16,
			Ban:              Ban{Threshold: 10, Window: 10 * time.Minute, Duration: 15 * time.Minute},
			ReceiptRetention: 30 * 24 * time.Hour,
			ResumeWindow:     24 * time.Hour,
			DrainTimeout:     20 * time.Second,
			// MaxHandlesPerNode 0: derived from the descriptor limit.
			MaxHandlesPerSession: 256, MaxHandlesPerSupplier: 1024, MaxChannelsPerConnection: 4, WriteStallTimeout: time.Minute,
		},
		HTTP:                       HTTP{Listen: "127.0.0.1:8080"},
		Database:                   "sqlite:" + filepath.Join(root, "state/airlock.db"),
		Landing:                    filepath.Join(root, "state/landing"),
		Quarantine:                 "s3://airlock-quarantine/node-1?region=eu-west-2",
		QuarantineReleaseApprovals: 2,
		Scanner:                    Scanner{Clamd: "unix:/run/clamav/clamd.ctl", TooLarge: TooLargeQuarantine},
		Limits:                     Limits{MaxFileSize: 5_000_000_000, UploadMemory: 512 << 20},
		SuppliersDir:               filepath.Join(root, "suppliers"),
		Exports:                    filepath.Join(root, "state/exports"),
		DatasetsDir:                filepath.Join(root, "datasets"),
		Watch:                      Watch{Every: 5 * time.Second},
		RoutesDir:                  filepath.Join(root, "routes"),
		Keys:                       map[string]string{},
		Policy:                     Policy{Partition: "aws", DenyTLSBelow: "1.2"},
		Notify:                     Notify{KeyExpiryNotice: 14 * 24 * time.Hour},
		Pipeline:                   Pipeline{Workers: defaultWorkers(), MaxAttempts: 20, RetryBackoff: time.Second, MaxBackoff: 5 * time.Minute, RescueAfter: time.Hour},
		Audit:                      Audit{Checkpoints: filepath.Join(root, "state/checkpoints"), SigningKey: filepath.Join(root, "state/audit_ed25519"), CheckpointInterval: 5 * time.Minute},
	}
	got := *cfg
	got.Suppliers, got.Datasets, got.Routes = nil, nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("config:\n got %+v\nwant %+v", got, want)
	}

	all := cfg.Suppliers.All()
	if len(all) != 2 || cfg.Suppliers.Len() != 2 {
		t.Fatalf("got %d suppliers, want 2", len(all))
	}
	acme, globex := all[0], all[1]
	if acme.Name != "acme_health" || globex.Name != "globex" {
		t.Fatalf("All() not sorted by name: %s, %s", acme.Name, globex.Name)
	}
	if s, ok := cfg.Suppliers.Lookup("globex"); !ok || s != globex {
		t.Errorf("Lookup(globex) = %v, %v", s, ok)
	}
	if _, ok := cfg.Suppliers.Lookup("nobody"); ok {
		t.Error("Lookup(nobody) found a supplier")
	}

	if acme.Email != "data@acme.example" {
		t.Errorf("email %q: the display name should be dropped", acme.Email)
	}
	wantIPs := []netip.Prefix{
		netip.MustParsePrefix("203.0.113.0/24"),
		netip.MustParsePrefix("198.51.100.7/32"),
		netip.MustParsePrefix("2001:db8::/32"),
	}
	if !reflect.DeepEqual(acme.AllowedIPs, wantIPs) {
		t.Errorf("allowed_ips %v, want %v", acme.AllowedIPs, wantIPs)
	}
	var keys []string
	for _, k := range acme.SSHKeys {
		keys = append(keys, k.Fingerprint+" "+k.Key.Type()+" "+k.Comment)
	}
	wantKeys := []string{
		edFingerprint + " ssh-ed25519 acme laptop",
		rsaFingerprint + " ssh-rsa acme build server",
	}
	if !reflect.DeepEqual(keys, wantKeys) {
		t.Errorf("ssh_keys %q, want %q", keys, wantKeys)
	}
	wantDest := Target{
		URL:    "s3://mojap-land/acme?region=eu-west-2",
		KMSKey: "arn:aws:kms:eu-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
	}
	if acme.Destination != wantDest {
		t.Errorf("destination %+v, want %+v", acme.Destination, wantDest)
	}
	if acme.Egress == nil || *acme.Egress != (Target{URL: "s3://egress/acme?region=eu-west-2"}) {
		t.Errorf("egress %+v", acme.Egress)
	}
	if acme.File != filepath.Join(root, "suppliers/acme_health.yaml") {
		t.Errorf("file %q", acme.File)
	}

	// Relative target paths resolve against airlock.yaml's directory.
	if globex.Destination.URL != filepath.Join(root, "state/globex-out") {
		t.Errorf("globex destination %q", globex.Destination.URL)
	}
	if globex.Egress != nil {
		t.Errorf("globex egress %+v, want nil", globex.Egress)
	}

	wantDatasets := []*Dataset{{
		Name:      "new_project",
		Paperwork: "https://wiki.example/dpia/new_project",
		Users:     []string{"alpha_user_one", "alpha_user_two"},
		Bucket:    Target{URL: "s3://target-bucket/prefix?region=eu-west-2", KMSKey: wantDest.KMSKey},
		KeepFiles: true,
		Approval:  1,
		File:      filepath.Join(root, "datasets/new_project.yaml"),
	}, {
		Name:       "shared_extract",
		Paperwork:  "https://wiki.example/dsa/shared_extract",
		Users:      []string{"alpha_user_one"},
		PullARNs:   []string{"arn:aws:iam::123456789012:role/role-name-1", "arn:aws:iam::210987654321:root"},
		PullBucket: "s3://mojap-shared-extract",
		Retention:  30 * 24 * time.Hour,
		File:       filepath.Join(root, "datasets/shared_extract.yml"),
	}}
	if got := cfg.Datasets.All(); !reflect.DeepEqual(got, wantDatasets) {
		t.Errorf("datasets:\n got %+v\nwant %+v", got, wantDatasets)
	}
	if d, ok := cfg.Datasets.Lookup("shared_extract"); !ok || d.Push() || cfg.Datasets.Len() != 2 {
		t.Errorf("Lookup(shared_extract) = %+v, %v; Len %d", d, ok, cfg.Datasets.Len())
	}
	if d, _ := cfg.Datasets.Lookup("new_project"); !d.Push() {
		t.Error("new_project is not a push dataset")
	}
}

func TestLoadFiveMistakes(t *testing.T) {
	t.Parallel()
	_, err := Load("testdata/five-mistakes/airlock.yaml")
	want := []string{
		`testdata/five-mistakes/airlock.yaml:3: unknown key "temp_paterns" (did you mean "temp_patterns"?)`,
		`testdata/five-mistakes/airlock.yaml:5: limits.max_file_size: invalid size "5 GX": unknown unit "GX" (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)`,
		`testdata/five-mistakes/suppliers/acme.yaml:5: allowed_ips[1]: "198.51.100.7/24" has host bits set (did you mean 198.51.100.0/24?)`,
		`testdata/five-mistakes/suppliers/acme.yaml:7: ssh_keys[0]: not a valid SSH public key: ssh: no key found; last parsing error for ignored line: ssh: short read`,
		`testdata/five-mistakes/suppliers/globex.yaml:1: name "globex-corp" does not match the file name "globex.yaml"`,
	}
	diffLines(t, messages(t, err, ""), want)
}

// TestConfigRules checks each airlock.yaml rule in a tree with an empty
// suppliers directory. want lists every error, in order; nil means valid.
func TestConfigRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		yaml  string
		files map[string]string // more files in the tree, by slash-separated path
		want  []string
		warns []string
		check func(t *testing.T, c *Config, root string)
	}{
		{
			name: "defaults",
			yaml: "sftp:\nhttp:\n",
			check: func(t *testing.T, c *Config, root string) {
				host, _ := os.Hostname()
				if c.Node != host || c.SFTP.Listen != ":2222" || c.HTTP.Listen != "127.0.0.1:8080" ||
					c.Database != "sqlite:"+filepath.Join(root, "state/airlock.db") ||
					c.Landing != filepath.Join(root, "state/landing") ||
					c.Quarantine != filepath.Join(root, "state/quarantine") ||
					c.Scanner != (Scanner{TooLarge: TooLargeQuarantine}) || c.Limits.MaxFileSize != 5e9 ||
					c.SFTP.ReceiptRetention != 30*24*time.Hour || c.Notify.Webhook != nil ||
					c.Pipeline != (Pipeline{Workers: defaultWorkers(), MaxAttempts: 20, RetryBackoff: time.Second, MaxBackoff: 5 * time.Minute, RescueAfter: time.Hour}) ||
					!reflect.DeepEqual(c.SFTP.HostKeys, []string{filepath.Join(root, "state/ssh_host_ed25519_key")}) ||
					c.SuppliersDir != filepath.Join(root, "suppliers") || c.Suppliers.Len() != 0 {
					t.Errorf("defaults not applied: %+v", c)
				}
			},
		},
		{name: "unknown key", yaml: "sftp: {}\nfoo: 1\n", want: []string{`airlock.yaml:2: unknown key "foo"`}},
		{name: "unknown key typo", yaml: "suppliers_dri: x\n", want: []string{`airlock.yaml:1: unknown key "suppliers_dri" (did you mean "suppliers_dir"?)`}},
		{name: "unknown nested key", yaml: "sftp:\n  lisen: \":22\"\n", want: []string{`airlock.yaml:2: unknown key "lisen" (did you mean "listen"?)`}},
		{name: "duplicate key", yaml: "database: sqlite:a\ndatabase: sqlite:b\n", want: []string{`airlock.yaml:2: duplicate key "database" (first at line 1)`}},
		{name: "list for string", yaml: "landing: [a, b]\n", want: []string{`airlock.yaml:1: landing: expected a string, got a list`}},
		{name: "string for mapping", yaml: "sftp: \":2222\"\n", want: []string{`airlock.yaml:1: sftp: expected a mapping, got a string`}},
		{name: "string for list", yaml: "sftp:\n  host_keys: key\n", want: []string{`airlock.yaml:2: sftp.host_keys: expected a list, got a string`}},
		{name: "number in list", yaml: "sftp:\n  temp_patterns:\n    - \"*.tmp\"\n    - 3\n", want: []string{`airlock.yaml:4: sftp.temp_patterns[1]: expected a string, got a number`}},
		{name: "syntax error", yaml: "sftp:\n  listen: [\n", want: []string{`airlock.yaml:3: YAML syntax error: did not find expected node content`}},
		// yaml.v3 reports where the broken mapping starts, not the bad line.
		{name: "syntax error in block", yaml: "node: a\nsftp:\n  host_keys:\n    - a\n   listen: x\n", want: []string{`airlock.yaml:3: YAML syntax error: did not find expected key`}},
		{name: "tab indentation", yaml: "sftp:\n\tlisten: x\n", want: []string{`airlock.yaml:2: YAML syntax error: found character that cannot start any token`}},
		{name: "empty file", yaml: "", want: []string{`airlock.yaml:1: file is empty`}},
		{name: "only comments", yaml: "# nothing yet\n", want: []string{`airlock.yaml:1: file is empty`}},
		{name: "top-level list", yaml: "- a\n", want: []string{`airlock.yaml:1: expected a mapping at the top level, got a list`}},
		{name: "boolean for string", yaml: "node: true\n", want: []string{`airlock.yaml:1: node: expected a string, got a boolean`}},
		{name: "date for string", yaml: "node: 2024-01-01\n", want: []string{`airlock.yaml:1: node: expected a string, got a value tagged !!timestamp`}},
		{name: "mapping for string", yaml: "http:\n  listen:\n    port: 80\n", want: []string{`airlock.yaml:3: http.listen: expected a string, got a mapping`}},
		{name: "list as key", yaml: "? [a]\n: b\n", want: []string{`airlock.yaml:1: keys must be strings, got a list`}},
		{name: "syntax error in second document", yaml: "node: a\n---\n[\n", want: []string{`airlock.yaml:4: YAML syntax error: did not find expected node content`}},
		{name: "two documents", yaml: "node: a\n---\nnode: b\n", want: []string{`airlock.yaml:2: only one YAML document is allowed per file`}},
		{name: "size bare bytes", yaml: "limits:\n  max_file_size: 1024\n", check: func(t *testing.T, c *Config, _ string) {
			if c.Limits.MaxFileSize != 1024 {
				t.Errorf("max_file_size %d", c.Limits.MaxFileSize)
			}
		}},
		{name: "size IEC", yaml: "limits:\n  max_file_size: 1.5 GiB\n", check: func(t *testing.T, c *Config, _ string) {
			if c.Limits.MaxFileSize != 1536<<20 {
				t.Errorf("max_file_size %d", c.Limits.MaxFileSize)
			}
		}},
		{name: "size unparsable", yaml: "limits:\n  max_file_size: lots\n", want: []string{`airlock.yaml:2: limits.max_file_size: invalid size "lots": want a number and a unit, like "5GB"`}},
		{name: "size zero", yaml: "limits:\n  max_file_size: 0\n", want: []string{`airlock.yaml:2: limits.max_file_size must be greater than 0`}},
		{name: "upload memory", yaml: "limits:\n  upload_memory: 2GiB\n", check: func(t *testing.T, c *Config, _ string) {
			if c.Limits.UploadMemory != 2<<30 {
				t.Errorf("upload_memory %d", c.Limits.UploadMemory)
			}
		}},
		{name: "upload memory zero", yaml: "limits:\n  upload_memory: 0\n", want: []string{`airlock.yaml:2: limits.upload_memory must be greater than 0`}},
		{name: "size negative", yaml: "limits:\n  max_file_size: -5GB\n", want: []string{`airlock.yaml:2: limits.max_file_size: invalid size "-5GB": want a number and a unit, like "5GB"`}},
		{name: "size fractional bytes", yaml: "limits:\n  max_file_size: 1.5B\n", want: []string{`airlock.yaml:2: limits.max_file_size: invalid size "1.5B": not a whole number of bytes`}},
		{name: "size wrong type", yaml: "limits:\n  max_file_size: [5GB]\n", want: []string{`airlock.yaml:2: limits.max_file_size: expected a size like "5GB", got a list`}},
		{name: "listen without port", yaml: "sftp:\n  listen: \"2222\"\n", want: []string{`airlock.yaml:2: sftp.listen: "2222" is not host:port: address 2222: missing port in address`}},
		{name: "listen port range", yaml: "sftp:\n  listen: \":70000\"\n", want: []string{`airlock.yaml:2: sftp.listen: ":70000": port "70000" must be a number from 1 to 65535`}},
		{name: "listen port zero", yaml: "http:\n  listen: \"127.0.0.1:0\"\n", want: []string{`airlock.yaml:2: http.listen: "127.0.0.1:0": port "0" must be a number from 1 to 65535`}},
		{name: "listen bad host", yaml: "http:\n  listen: \"local host:80\"\n", want: []string{`airlock.yaml:2: http.listen: "local host:80": "local host" is neither an IP address nor a host name`}},
		{name: "listen IPv6", yaml: "sftp:\n  listen: \"[::1]:2222\"\n"},
		{name: "database postgres", yaml: "database: postgresql://airlock@db.internal/airlock\nlanding: s3://land\nquarantine: s3://q\nsftp:\n  host_keys: [key]\n",
			files: map[string]string{"key": "mounted"}, check: func(t *testing.T, c *Config, _ string) {
				if c.Database != "postgresql://airlock@db.internal/airlock" {
					t.Errorf("database %q", c.Database)
				}
			}},
		{name: "database absolute sqlite", yaml: "database: sqlite:/var/lib/airlock/airlock.db\n", check: func(t *testing.T, c *Config, _ string) {
			if c.Database != "sqlite:/var/lib/airlock/airlock.db" {
				t.Errorf("database %q", c.Database)
			}
		}},
		{name: "database other scheme", yaml: "database: mysql://db/airlock\n", want: []string{`airlock.yaml:1: database: "mysql://db/airlock" must be sqlite:<path> or a postgres:// or postgresql:// URL`}},
		{name: "database password redacted", yaml: "database: postgress://u:secret@db/airlock\n", want: []string{`airlock.yaml:1: database: "postgress://db/airlock" must be sqlite:<path> or a postgres:// or postgresql:// URL`}},
		{name: "database sqlite without path", yaml: "database: \"sqlite:\"\n", want: []string{`airlock.yaml:1: database: "sqlite:" needs a path, like "sqlite:state/airlock.db"`}},
		{name: "store URLs", yaml: "landing: file:///srv/landing\nquarantine: mem://\n", check: func(t *testing.T, c *Config, _ string) {
			if c.Landing != "file:///srv/landing" || c.Quarantine != "mem://" {
				t.Errorf("landing %q quarantine %q", c.Landing, c.Quarantine)
			}
		}},
		{name: "release approvals default", yaml: "landing: state/landing\n", check: func(t *testing.T, c *Config, _ string) {
			if c.QuarantineReleaseApprovals != 1 {
				t.Errorf("quarantine_release_approvals %d; want 1", c.QuarantineReleaseApprovals)
			}
		}},
		{name: "release approvals off", yaml: "quarantine_release_approvals: 0\n", check: func(t *testing.T, c *Config, _ string) {
			if c.QuarantineReleaseApprovals != 0 {
				t.Errorf("quarantine_release_approvals %d; want 0", c.QuarantineReleaseApprovals)
			}
		}},
		{name: "release approvals too many", yaml: "quarantine_release_approvals: 9\n", want: []string{`airlock.yaml:1: quarantine_release_approvals must be from 0 to 5, got 9`}},
		{name: "release approvals not a number", yaml: "quarantine_release_approvals: two\n", want: []string{`airlock.yaml:1: quarantine_release_approvals: expected a whole number, got a string`}},
		{name: "store unknown scheme", yaml: "landing: ftp://files/landing\n", want: []string{`airlock.yaml:1: landing: "ftp://files/landing": unsupported scheme "ftp" (use a path or a file, s3, gs, azblob or mem URL)`}},
		{name: "store without bucket", yaml: "quarantine: s3:///quarantine\n", want: []string{`airlock.yaml:1: quarantine: "s3:///quarantine" has no bucket: write s3://<bucket>/<prefix>`}},
		{name: "store file without path", yaml: "landing: file://\n", want: []string{`airlock.yaml:1: landing: "file://" has no path: write file:///absolute/path`}},
		{name: "store URL does not parse", yaml: "landing: \"gs://bucket/%zz\"\n", want: []string{`airlock.yaml:1: landing: invalid URL: parse "gs://bucket/%zz": invalid URL escape "%zz"`}},
		{name: "temp pattern bad", yaml: "sftp:\n  temp_patterns: [\"[a-\"]\n", want: []string{`airlock.yaml:2: sftp.temp_patterns[0]: "[a-": syntax error in pattern`}},
		{name: "temp pattern with slash", yaml: "sftp:\n  temp_patterns: [\"tmp/*\"]\n", want: []string{`airlock.yaml:2: sftp.temp_patterns[0]: "tmp/*" must be a non-empty pattern for a base name, without /`}},
		{name: "temp patterns off", yaml: "sftp:\n  temp_patterns: []\n", check: func(t *testing.T, c *Config, _ string) {
			if len(c.SFTP.TempPatterns) != 0 {
				t.Errorf("temp_patterns %q, want none", c.SFTP.TempPatterns)
			}
		}},
		{name: "host keys empty", yaml: "sftp:\n  host_keys: []\n", want: []string{`airlock.yaml:2: sftp.host_keys must list at least one key file`}},
		{name: "clamd tcp", yaml: "scanner:\n  clamd: tcp://127.0.0.1:3310\n"},
		{name: "clamd relative socket", yaml: "scanner:\n  clamd: unix:run/clamd.sock\n", check: func(t *testing.T, c *Config, root string) {
			if c.Scanner.Clamd != "unix:"+filepath.Join(root, "run/clamd.sock") {
				t.Errorf("clamd %q", c.Scanner.Clamd)
			}
		}},
		{name: "clamd empty is builtin", yaml: "scanner:\n  clamd: \"\"\n"},
		{name: "clamd no scheme", yaml: "scanner:\n  clamd: localhost:3310\n", want: []string{`airlock.yaml:2: scanner.clamd: "localhost:3310" must be unix:<socket path> or tcp://host:port`}},
		{name: "clamd tcp without port", yaml: "scanner:\n  clamd: tcp://localhost\n", want: []string{`airlock.yaml:2: scanner.clamd: "localhost" is not host:port: address localhost: missing port in address`}},
		{name: "clamd tcp without host", yaml: "scanner:\n  clamd: tcp://:3310\n", want: []string{`airlock.yaml:2: scanner.clamd: ":3310" has no host`}},
		{name: "sftp limits", yaml: "sftp:\n  max_auth_tries: 3\n  handshake_timeout: 10s\n  idle_timeout: 1h30m\n  keepalive_interval: \"0\"\n" +
			"  max_connections_per_ip: 2\n  max_unauthenticated: 1\n  ban:\n    threshold: 0\n    window: 1d\n    duration: 7d\n" +
			"  max_handles_per_session: 8\n  max_handles_per_supplier: 9\n  max_handles_per_node: 10\n  max_channels_per_connection: 1\n  write_stall_timeout: 90s\n  drain_timeout: 45s\n",
			check: func(t *testing.T, c *Config, _ string) {
				want := SFTP{Listen: c.SFTP.Listen, HostKeys: c.SFTP.HostKeys, TempPatterns: c.SFTP.TempPatterns,
					MaxAuthTries: 3, Algorithms: AlgorithmsCompatible, HandshakeTimeout: 10 * time.Second, IdleTimeout: 90 * time.Minute, KeepaliveInterval: 0,
					MaxConnectionsPerIP: 2, MaxUnauthenticated: 1, MaxUnauthenticatedPerIP: 10, MaxUnauthenticatedPerNetwork: 1, Ban: Ban{Threshold: 0, Window: 24 * time.Hour, Duration: 7 * 24 * time.Hour},
					ReceiptRetention:     30 * 24 * time.Hour,
					ResumeWindow:         24 * time.Hour,
					DrainTimeout:         45 * time.Second,
					MaxHandlesPerSession: 8, MaxHandlesPerSupplier: 9, MaxHandlesPerNode: 10, MaxChannelsPerConnection: 1, WriteStallTimeout: 90 * time.Second}
				if !reflect.DeepEqual(c.SFTP, want) {
					t.Errorf("sftp %+v\nwant %+v", c.SFTP, want)
				}
			}},
		{name: "keepalive bare zero", yaml: "sftp:\n  keepalive_interval: 0\n", check: func(t *testing.T, c *Config, _ string) {
			if c.SFTP.KeepaliveInterval != 0 {
				t.Errorf("keepalive_interval %v", c.SFTP.KeepaliveInterval)
			}
		}},
		{
			name: "sftp resource limits out of range",
			yaml: "sftp:\n  max_handles_per_session: 0\n  max_handles_per_supplier: -1\n  max_handles_per_node: 0\n  max_channels_per_connection: many\n",
			want: []string{
				`airlock.yaml:2: sftp.max_handles_per_session must be at least 1, got 0`,
				`airlock.yaml:3: sftp.max_handles_per_supplier must be at least 1, got -1`,
				`airlock.yaml:4: sftp.max_handles_per_node must be at least 1, got 0`,
				`airlock.yaml:5: sftp.max_channels_per_connection: expected a whole number, got a string`,
			},
		},
		{
			name: "sftp limits out of range",
			yaml: "sftp:\n  max_auth_tries: 0\n  handshake_timeout: 0s\n  idle_timeout: -5m\n  keepalive_interval: 30\n" +
				"  max_connections_per_ip: 0\n  max_unauthenticated: \"64\"\n  ban:\n    threshold: -1\n    window: 10 minutes\n    duration: [15m]\n",
			want: []string{
				`airlock.yaml:2: sftp.max_auth_tries must be from 1 to 20, got 0`,
				`airlock.yaml:3: sftp.handshake_timeout must be greater than 0`,
				`airlock.yaml:4: sftp.idle_timeout: invalid duration "-5m": must not be negative`,
				`airlock.yaml:5: sftp.keepalive_interval: invalid duration "30": want a number and a unit, like "30s", "15m", "336h" or "14d"`,
				`airlock.yaml:6: sftp.max_connections_per_ip must be at least 1, got 0`,
				`airlock.yaml:7: sftp.max_unauthenticated: expected a whole number, got a string`,
				`airlock.yaml:9: sftp.ban.threshold must be at least 0, got -1`,
				`airlock.yaml:10: sftp.ban.window: invalid duration "10 minutes": want a number and a unit, like "30s", "15m", "336h" or "14d"`,
				`airlock.yaml:11: sftp.ban.duration: expected a duration like "30s", "15m" or "14d", got a list`,
			},
		},
		{name: "algorithms modern", yaml: "sftp:\n  algorithms: modern\n", check: func(t *testing.T, c *Config, _ string) {
			if c.SFTP.Algorithms != AlgorithmsModern {
				t.Errorf("algorithms %q", c.SFTP.Algorithms)
			}
		}},
		{name: "algorithms unknown", yaml: "sftp:\n  algorithms: legacy\n",
			want: []string{`airlock.yaml:2: sftp.algorithms: "legacy" must be modern or compatible`}},
		{name: "max auth tries too many", yaml: "sftp:\n  max_auth_tries: 21\n", want: []string{`airlock.yaml:2: sftp.max_auth_tries must be from 1 to 20, got 21`}},
		{name: "ban unknown key", yaml: "sftp:\n  ban:\n    treshold: 5\n", want: []string{`airlock.yaml:3: unknown key "treshold" (did you mean "threshold"?)`}},
		{
			name: "notify",
			yaml: "notify:\n  smtp:\n    addr: smtp.example.org:465\n    from: \"Airlock <airlock@example.org>\"\n    username: airlock\n" +
				"    password_env: AIRLOCK_SMTP_PASSWORD\n    tls: implicit\n  operators: [ops@example.org, \"Duty <duty@example.org>\"]\n  key_expiry_notice: 7d\n",
			check: func(t *testing.T, c *Config, _ string) {
				want := Notify{
					SMTP: &SMTP{Addr: "smtp.example.org:465", From: "Airlock <airlock@example.org>", Username: "airlock",
						PasswordEnv: "AIRLOCK_SMTP_PASSWORD", TLS: "implicit"},
					Operators:       []string{"ops@example.org", "duty@example.org"},
					KeyExpiryNotice: 7 * 24 * time.Hour,
				}
				if !reflect.DeepEqual(c.Notify, want) {
					t.Errorf("notify %+v (smtp %+v)\nwant %+v", c.Notify, c.Notify.SMTP, want)
				}
			},
		},
		{name: "notify smtp defaults", yaml: "notify:\n  smtp:\n    addr: smtp.example.org:587\n    from: airlock@example.org\n", check: func(t *testing.T, c *Config, _ string) {
			if want := (SMTP{Addr: "smtp.example.org:587", From: "airlock@example.org", TLS: "starttls"}); c.Notify.SMTP == nil || *c.Notify.SMTP != want {
				t.Errorf("smtp %+v, want %+v", c.Notify.SMTP, want)
			}
			if c.Notify.KeyExpiryNotice != 14*24*time.Hour {
				t.Errorf("key_expiry_notice %v", c.Notify.KeyExpiryNotice)
			}
		}},
		{name: "notify empty smtp", yaml: "notify:\n  smtp:\n  key_expiry_notice: \"0\"\n", check: func(t *testing.T, c *Config, _ string) {
			if c.Notify.SMTP != nil || c.Notify.KeyExpiryNotice != 0 {
				t.Errorf("notify %+v", c.Notify)
			}
		}},
		{name: "smtp none on loopback", yaml: "notify:\n  smtp:\n    addr: \"[::1]:25\"\n    from: a@b.example\n    tls: none\n",
			warns: []string{`airlock.yaml:5: warning: notify.smtp.tls: "none" sends mail and the SMTP password in clear (allowed because ::1 is a loopback address)`}},
		{
			name: "smtp mistakes",
			yaml: "notify:\n  smtp:\n    addr: smtp.example.org\n    from: airlock\n    username: airlock\n    tls: STARTTLS\n" +
				"  operators: [ops]\n  key_expiry_notice: 2w\n",
			want: []string{
				`airlock.yaml:3: notify.smtp.addr: "smtp.example.org" is not host:port: address smtp.example.org: missing port in address`,
				`airlock.yaml:4: notify.smtp.from: "airlock" is not a single email address: mail: missing '@' or angle-addr`,
				`airlock.yaml:5: notify.smtp.username is set but password_env is not: name the environment variable that holds the password`,
				`airlock.yaml:6: notify.smtp.tls: "STARTTLS" must be starttls, implicit or none`,
				`airlock.yaml:7: notify.operators[0]: "ops" is not a single email address: mail: missing '@' or angle-addr`,
				`airlock.yaml:8: notify.key_expiry_notice: invalid duration "2w": want a number and a unit, like "30s", "15m", "336h" or "14d"`,
			},
		},
		{
			name: "smtp missing keys and bad env name",
			yaml: "notify:\n  smtp:\n    password_env: smtp-password\n    usr: x\n",
			want: []string{
				`airlock.yaml:3: missing required key "addr"`,
				`airlock.yaml:3: missing required key "from"`,
				`airlock.yaml:3: notify.smtp.password_env: "smtp-password" is not an environment variable name (letters, digits and _, not starting with a digit)`,
				`airlock.yaml:4: unknown key "usr"`,
			},
		},
		{name: "smtp password_env without username", yaml: "notify:\n  smtp:\n    addr: smtp.example.org:587\n    from: a@b.example\n    password_env: PW\n",
			want: []string{`airlock.yaml:5: notify.smtp.password_env is set but username is not`}},
		{name: "smtp none off loopback", yaml: "notify:\n  smtp:\n    addr: smtp.example.org:25\n    from: a@b.example\n    tls: none\n",
			want: []string{`airlock.yaml:5: notify.smtp.tls: "none" sends mail and the SMTP password in clear; it is allowed only when addr is a loopback address (localhost, 127.0.0.1, ::1), not "smtp.example.org"`}},
		{name: "smtp tls wrong type", yaml: "notify:\n  smtp:\n    addr: localhost:25\n    from: a@b.example\n    tls: [none]\n",
			want: []string{`airlock.yaml:5: notify.smtp.tls: expected a string, got a list`}},
		{name: "receipt retention", yaml: "sftp:\n  receipt_retention: 7d\n", check: func(t *testing.T, c *Config, _ string) {
			if c.SFTP.ReceiptRetention != 7*24*time.Hour {
				t.Errorf("receipt_retention %v", c.SFTP.ReceiptRetention)
			}
		}},
		{name: "receipts off", yaml: "sftp:\n  receipt_retention: 0\n", check: func(t *testing.T, c *Config, _ string) {
			if c.SFTP.ReceiptRetention != 0 {
				t.Errorf("receipt_retention %v", c.SFTP.ReceiptRetention)
			}
		}},
		{name: "receipt retention bad", yaml: "sftp:\n  receipt_retention: 1 month\n",
			want: []string{`airlock.yaml:2: sftp.receipt_retention: invalid duration "1 month": want a number and a unit, like "30s", "15m", "336h" or "14d"`}},
		{name: "receipt retention negative", yaml: "sftp:\n  receipt_retention: -24h\n",
			want: []string{`airlock.yaml:2: sftp.receipt_retention: invalid duration "-24h": must not be negative`}},
		{name: "receipt retention typo", yaml: "sftp:\n  reciept_retention: 1d\n",
			want: []string{`airlock.yaml:2: unknown key "reciept_retention" (did you mean "receipt_retention"?)`}},
		{
			name:  "deny list",
			yaml:  "scanner:\n  deny_list: lists/deny.sha256\n  too_large: quarantine\n",
			files: map[string]string{"lists/deny.sha256": ""},
			check: func(t *testing.T, c *Config, root string) {
				if want := (Scanner{DenyList: filepath.Join(root, "lists/deny.sha256"), TooLarge: TooLargeQuarantine}); c.Scanner != want {
					t.Errorf("scanner %+v, want %+v", c.Scanner, want)
				}
			},
		},
		{name: "deny list absolute", yaml: "scanner:\n  deny_list: /dev/null\n", check: func(t *testing.T, c *Config, _ string) {
			if c.Scanner.DenyList != "/dev/null" {
				t.Errorf("deny_list %q", c.Scanner.DenyList)
			}
		}},
		{name: "deny list empty is none", yaml: "scanner:\n  deny_list: \"\"\n"},
		{name: "deny list missing", yaml: "scanner:\n  deny_list: deny.sha256\n",
			want: []string{`airlock.yaml:2: scanner.deny_list: "deny.sha256": no such file or directory`}},
		{name: "deny list is a directory", yaml: "scanner:\n  deny_list: suppliers\n",
			want: []string{`airlock.yaml:2: scanner.deny_list: "suppliers" is a directory, not a file`}},
		{name: "deny list wrong type", yaml: "scanner:\n  deny_list: [a, b]\n",
			want: []string{`airlock.yaml:2: scanner.deny_list: expected a string, got a list`}},
		{name: "deny list with clamd", yaml: "scanner:\n  clamd: tcp://127.0.0.1:3310\n  deny_list: deny.sha256\n", files: map[string]string{"deny.sha256": ""},
			warns: []string{`airlock.yaml:3: warning: scanner.deny_list is ignored: only the builtin scanner reads it, and scanner.clamd is set`}},
		{name: "too large deliver", yaml: "scanner:\n  clamd: tcp://127.0.0.1:3310\n  too_large: deliver\n",
			warns: []string{`airlock.yaml:3: warning: scanner.too_large: "deliver": a file larger than clamd's StreamMaxLength is delivered without being scanned`},
			check: func(t *testing.T, c *Config, _ string) {
				if c.Scanner.TooLarge != TooLargeDeliver {
					t.Errorf("too_large %q", c.Scanner.TooLarge)
				}
			}},
		{name: "too large unknown", yaml: "scanner:\n  too_large: Quarantine\n",
			want: []string{`airlock.yaml:2: scanner.too_large: "Quarantine" must be quarantine or deliver`}},
		{name: "too large typo", yaml: "scanner:\n  too-large: deliver\n",
			want: []string{`airlock.yaml:2: unknown key "too-large" (did you mean "too_large"?)`}},
		{
			name: "pipeline",
			yaml: "pipeline:\n  workers: 64\n  max_attempts: 1000\n  retry_backoff: 500ms\n  max_backoff: 1h\n  rescue_after: 1m\n",
			check: func(t *testing.T, c *Config, _ string) {
				want := Pipeline{Workers: 64, MaxAttempts: 1000, RetryBackoff: 500 * time.Millisecond, MaxBackoff: time.Hour, RescueAfter: time.Minute}
				if c.Pipeline != want {
					t.Errorf("pipeline %+v, want %+v", c.Pipeline, want)
				}
			},
		},
		{name: "pipeline equal backoffs", yaml: "pipeline:\n  retry_backoff: 1d\n  max_backoff: 24h\n"},
		{
			name: "pipeline out of range",
			yaml: "pipeline:\n  workers: 0\n  max_attempts: 1001\n  retry_backoff: 0s\n  max_backoff: 5 minutes\n  rescue_after: 59s\n",
			want: []string{
				`airlock.yaml:2: pipeline.workers must be from 1 to 64, got 0`,
				`airlock.yaml:3: pipeline.max_attempts must be from 1 to 1000, got 1001`,
				`airlock.yaml:4: pipeline.retry_backoff must be greater than 0`,
				`airlock.yaml:5: pipeline.max_backoff: invalid duration "5 minutes": want a number and a unit, like "30s", "15m", "336h" or "14d"`,
				`airlock.yaml:6: pipeline.rescue_after must be at least 1m0s, got 59s`,
			},
		},
		{
			name: "pipeline wrong types",
			yaml: "pipeline:\n  workers: \"4\"\n  max_attempts: 2.5\n  rescue_after: 0\n",
			want: []string{
				`airlock.yaml:2: pipeline.workers: expected a whole number, got a string`,
				`airlock.yaml:3: pipeline.max_attempts: expected a whole number, got a number`,
				`airlock.yaml:4: pipeline.rescue_after must be greater than 0`,
			},
		},
		{name: "pipeline workers too many", yaml: "pipeline:\n  workers: 65\n", want: []string{`airlock.yaml:2: pipeline.workers must be from 1 to 64, got 65`}},
		{name: "pipeline max_attempts zero", yaml: "pipeline:\n  max_attempts: 0\n", want: []string{`airlock.yaml:2: pipeline.max_attempts must be from 1 to 1000, got 0`}},
		{name: "max backoff below retry backoff", yaml: "pipeline:\n  retry_backoff: 10s\n  max_backoff: 5s\n",
			want: []string{`airlock.yaml:3: pipeline.max_backoff (5s) must be at least retry_backoff (10s)`}},
		{name: "retry backoff above default max", yaml: "pipeline:\n  retry_backoff: 10m\n",
			want: []string{`airlock.yaml:2: pipeline.max_backoff (5m0s, the default) must be at least retry_backoff (10m0s)`}},
		// The broken retry_backoff must not also be compared, as its default, with max_backoff.
		{name: "broken retry backoff is not compared", yaml: "pipeline:\n  retry_backoff: soon\n  max_backoff: 100ms\n",
			want: []string{`airlock.yaml:2: pipeline.retry_backoff: invalid duration "soon": want a number and a unit, like "30s", "15m", "336h" or "14d"`}},
		{name: "pipeline not a mapping", yaml: "pipeline: 4\n", want: []string{`airlock.yaml:1: pipeline: expected a mapping, got a number`}},
		{name: "pipeline typo", yaml: "pipeline:\n  worker: 2\n", want: []string{`airlock.yaml:2: unknown key "worker" (did you mean "workers"?)`}},
		{
			name: "webhook",
			yaml: "notify:\n  webhook:\n    url: https://hooks.example/airlock?team=data\n    secret_env: AIRLOCK_WEBHOOK_SECRET\n",
			check: func(t *testing.T, c *Config, _ string) {
				want := Webhook{URL: "https://hooks.example/airlock?team=data", SecretEnv: "AIRLOCK_WEBHOOK_SECRET"}
				if c.Notify.Webhook == nil || *c.Notify.Webhook != want {
					t.Errorf("webhook %+v, want %+v", c.Notify.Webhook, want)
				}
			},
		},
		{name: "webhook empty is none", yaml: "notify:\n  webhook:\n"},
		{name: "webhook http on loopback", yaml: "notify:\n  webhook:\n    url: http://127.0.0.1:9000/hook\n    secret_env: S\n",
			warns: []string{`airlock.yaml:3: warning: notify.webhook.url: "http://127.0.0.1:9000/hook" sends events in clear (allowed because 127.0.0.1 is a loopback address)`}},
		{name: "webhook http off loopback", yaml: "notify:\n  webhook:\n    url: http://hooks.example/airlock\n    secret_env: S\n",
			want: []string{`airlock.yaml:3: notify.webhook.url: "http://hooks.example/airlock" sends events in clear; it is allowed only when the URL's host is a loopback address (localhost, 127.0.0.1, ::1), not "hooks.example"`}},
		{
			name: "webhook mistakes",
			yaml: "notify:\n  webhook:\n    url: ftp://hooks.example/airlock\n    secret_env: webhook-secret\n",
			want: []string{
				`airlock.yaml:3: notify.webhook.url: "ftp://hooks.example/airlock" must be an https:// URL`,
				`airlock.yaml:4: notify.webhook.secret_env: "webhook-secret" is not an environment variable name (letters, digits and _, not starting with a digit)`,
			},
		},
		{name: "webhook without scheme", yaml: "notify:\n  webhook:\n    url: hooks.example/airlock\n    secret_env: S\n",
			want: []string{`airlock.yaml:3: notify.webhook.url: "hooks.example/airlock" must be an https:// URL`}},
		{name: "webhook without host", yaml: "notify:\n  webhook:\n    url: https:///airlock\n    secret_env: S\n",
			want: []string{`airlock.yaml:3: notify.webhook.url: "https:///airlock" has no host`}},
		{name: "webhook bad host", yaml: "notify:\n  webhook:\n    url: https://hooks_example/airlock\n    secret_env: S\n",
			want: []string{`airlock.yaml:3: notify.webhook.url: "https://hooks_example/airlock": "hooks_example" is neither an IP address nor a host name`}},
		{name: "webhook URL does not parse", yaml: "notify:\n  webhook:\n    url: \"https://hooks.example/%zz\"\n    secret_env: S\n",
			want: []string{`airlock.yaml:3: notify.webhook.url: invalid URL: parse "https://hooks.example/%zz": invalid URL escape "%zz"`}},
		{
			name: "webhook missing keys",
			yaml: "notify:\n  webhook:\n    secret: S\n",
			want: []string{
				`airlock.yaml:3: unknown key "secret" (did you mean "secret_env"?)`,
				`airlock.yaml:3: missing required key "url"`,
				`airlock.yaml:3: missing required key "secret_env"`,
			},
		},
		{
			name: "webhook empty values",
			yaml: "notify:\n  webhook:\n    url: \"\"\n    secret_env:\n",
			want: []string{
				`airlock.yaml:3: notify.webhook.url must not be empty`,
				`airlock.yaml:4: notify.webhook.secret_env must not be empty`,
			},
		},
		{name: "webhook not a mapping", yaml: "notify:\n  webhook: https://hooks.example/airlock\n",
			want: []string{`airlock.yaml:2: notify.webhook: expected a mapping, got a string`}},
		{name: "suppliers dir missing", yaml: "suppliers_dir: nope\n", want: []string{`nope: cannot read suppliers directory: no such file or directory`}},
		{
			name: "all errors at once",
			yaml: "node: [a]\nsftp:\n  listen: x\nlanding: ftp://x\nlimits:\n  max_file_size: 0\n",
			want: []string{
				`airlock.yaml:1: node: expected a string, got a list`,
				`airlock.yaml:3: sftp.listen: "x" is not host:port: address x: missing port in address`,
				`airlock.yaml:4: landing: "ftp://x": unsupported scheme "ftp" (use a path or a file, s3, gs, azblob or mem URL)`,
				`airlock.yaml:6: limits.max_file_size must be greater than 0`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			files := map[string]string{"airlock.yaml": tt.yaml, "suppliers/README.md": "not a supplier"}
			maps.Copy(files, tt.files)
			dir := writeTree(t, files)
			cfg, warns, err := Check(filepath.Join(dir, "airlock.yaml"))
			diffLines(t, messages(t, err, dir), tt.want)
			diffLines(t, messages(t, warns, dir), tt.warns)
			if tt.check != nil && cfg != nil {
				tt.check(t, cfg, dir)
			}
		})
	}
}

// TestConfigWarnings: risky but legal settings load, with warnings in the
// file:line form, from airlock.yaml and the supplier files alike.
func TestConfigWarnings(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{
		"airlock.yaml":        "node: n\nnotify:\n  smtp:\n    addr: localhost:25\n    from: a@b.example\n    tls: none\n",
		"suppliers/acme.yaml": edit(acmeYAML, `allowed_ips: ["203.0.113.0/24"]`, `allowed_ips: ["0.0.0.0/0"]`),
	})
	cfg, err := Load(filepath.Join(dir, "airlock.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`airlock.yaml:6: warning: notify.smtp.tls: "none" sends mail and the SMTP password in clear (allowed because localhost is a loopback address)`,
		`suppliers/acme.yaml:3: warning: allowed_ips[0]: 0.0.0.0/0 is open to every IPv4 address on the internet`,
	}
	diffLines(t, messages(t, cfg.Warnings, dir), want)
	diffLines(t, messages(t, cfg.Suppliers.Warnings(), dir), want[1:])
}

// TestCheckReturnsWarningsWithErrors: validate shows both in one run.
func TestCheckReturnsWarningsWithErrors(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{
		"airlock.yaml":        "node: n\nsftp:\n  idle_timeout: 0s\n",
		"suppliers/acme.yaml": edit(acmeYAML, `allowed_ips: ["203.0.113.0/24"]`, `allowed_ips: ["::/0"]`),
	})
	cfg, warns, err := Check(filepath.Join(dir, "airlock.yaml"))
	if cfg != nil {
		t.Error("Check returned a config despite errors")
	}
	diffLines(t, messages(t, err, dir), []string{`airlock.yaml:3: sftp.idle_timeout must be greater than 0`})
	diffLines(t, messages(t, warns, dir), []string{`suppliers/acme.yaml:3: warning: allowed_ips[0]: ::/0 is open to every IPv6 address on the internet`})
	if strings.Contains(err.Error(), "warning") {
		t.Errorf("warnings leaked into the error: %v", err)
	}
}

// TestLoadBrokenConfigStillChecksSuppliers: one run of `airlock validate`
// must show problems in both kinds of file.
func TestLoadBrokenConfigStillChecksSuppliers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{
			name: "bad setting",
			yaml: "sftp:\n  listen: nowhere\nsuppliers_dir: people\n",
			want: []string{
				`airlock.yaml:2: sftp.listen: "nowhere" is not host:port: address nowhere: missing port in address`,
				`people/acme.yaml:1: missing required key "email"`,
			},
		},
		{
			name: "suppliers_dir unknowable",
			yaml: "suppliers_dir: [people]\n",
			want: []string{`airlock.yaml:1: suppliers_dir: expected a string, got a list`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := writeTree(t, map[string]string{
				"airlock.yaml":     tt.yaml,
				"people/acme.yaml": edit(acmeYAML, "email: data@acme.example\n", ""),
			})
			_, err := Load(filepath.Join(dir, "airlock.yaml"))
			diffLines(t, messages(t, err, dir), tt.want)
		})
	}
}

func TestLoadUnreadable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := Load(filepath.Join(dir, "airlock.yaml"))
	diffLines(t, messages(t, err, dir), []string{"airlock.yaml: cannot read: no such file or directory"})
}

func TestIsTempName(t *testing.T) {
	t.Parallel()
	c := &Config{SFTP: SFTP{TempPatterns: defaultTempPatterns}}
	tests := []struct {
		name string
		want bool
	}{
		{"report.csv.filepart", true},
		{"/upload/2024/report.csv.part", true},
		{"x.tmp", true},
		{"report.csv", false},
		{"tmp/report.csv", false},
		{"report.tmp.csv", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := c.IsTempName(tt.name); got != tt.want {
				t.Errorf("IsTempName(%q) = %v, want %v", tt.name, got, tt.want)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	t.Parallel()
	errs := Errors{
		{File: "b.yaml", Line: 2, Msg: "second"},
		{File: "a.yaml", Line: 9, Msg: "first"},
		{File: "dir", Msg: "whole directory"},
	}
	err := errs.orNil()
	want := "a.yaml:9: first\nb.yaml:2: second\ndir: whole directory"
	if err.Error() != want {
		t.Errorf("got\n%s\nwant\n%s", err, want)
	}
	if Errors(nil).orNil() != nil {
		t.Error("empty Errors must be a nil error")
	}
}

// TestTreesWithoutWarnings: the example tree and the valid fixture load
// without warnings, as `airlock validate` on them must print nothing but
// the ok line (the integration suite counts file:line lines).
func TestTreesWithoutWarnings(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"../../examples/airlock.yaml", "testdata/valid/airlock.yaml"} {
		cfg, err := Load(file)
		if err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		if len(cfg.Warnings) > 0 {
			t.Errorf("%s: warnings:\n%v", file, cfg.Warnings)
		}
	}
}
