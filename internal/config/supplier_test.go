package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// TestSupplierRules checks each supplier-file rule. files are written under
// suppliers/ next to a minimal airlock.yaml; want lists every error in order.
func TestSupplierRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{name: "valid", files: map[string]string{"acme.yaml": acmeYAML, "globex.yml": globexYAML}},
		{
			name:  "other files ignored",
			files: map[string]string{"acme.yaml": acmeYAML, "README.md": "# suppliers", ".acme.yaml.swp": "\x00", ".hidden.yaml": "broken: ["},
		},
		{
			name:  "unknown key with suggestion",
			files: map[string]string{"acme.yaml": edit(acmeYAML, "allowed_ips:", "alowed_ips:")},
			want: []string{
				`suppliers/acme.yaml:1: missing required key "allowed_ips"`,
				`suppliers/acme.yaml:3: unknown key "alowed_ips" (did you mean "allowed_ips"?)`,
			},
		},
		{
			name:  "unknown key in destination",
			files: map[string]string{"acme.yaml": acmeYAML + "  kms: arn:aws:kms:eu-west-2:1:key/x\n"},
			want:  []string{`suppliers/acme.yaml:7: unknown key "kms" (did you mean "kms_key"?)`},
		},
		{
			name:  "unrelated unknown key",
			files: map[string]string{"acme.yaml": acmeYAML + "colour: blue\n"},
			want:  []string{`suppliers/acme.yaml:7: unknown key "colour"`},
		},
		{
			name:  "missing required",
			files: map[string]string{"acme.yaml": "# acme\nname: acme\n"},
			want: []string{
				`suppliers/acme.yaml:2: missing required key "email"`,
				`suppliers/acme.yaml:2: missing required key "allowed_ips"`,
				`suppliers/acme.yaml:2: missing required key "ssh_keys"`,
				`suppliers/acme.yaml:2: missing required key "destination"`,
			},
		},
		{
			name:  "empty values",
			files: map[string]string{"acme.yaml": edit(edit(acmeYAML, "email: data@acme.example", `email: ""`), "destination:\n  url: s3://land/acme\n", "destination:\n")},
			want: []string{
				`suppliers/acme.yaml:2: email must not be empty`,
				`suppliers/acme.yaml:5: destination must not be empty`,
			},
		},
		{
			name:  "empty file",
			files: map[string]string{"acme.yaml": "\n"},
			want:  []string{`suppliers/acme.yaml:1: file is empty`},
		},
		{
			name:  "syntax error",
			files: map[string]string{"acme.yaml": edit(acmeYAML, `allowed_ips: ["203.0.113.0/24"]`, `allowed_ips: ["203.0.113.0/24"`)},
			want:  []string{`suppliers/acme.yaml:3: YAML syntax error: did not find expected ',' or ']'`},
		},
		{
			name:  "wrong types",
			files: map[string]string{"acme.yaml": edit(edit(acmeYAML, `allowed_ips: ["203.0.113.0/24"]`, `allowed_ips: 203.0.113.0/24`), "name: acme", "name: [acme]")},
			want: []string{
				`suppliers/acme.yaml:1: name: expected a string, got a list`,
				`suppliers/acme.yaml:3: allowed_ips: expected a list, got a string`,
			},
		},
		{
			name:  "name syntax",
			files: map[string]string{"Acme.yaml": edit(acmeYAML, "name: acme", "name: Acme")},
			want:  []string{`suppliers/Acme.yaml:1: name "Acme" must match ^[a-z][a-z0-9_-]{1,31}$ (a lowercase letter, then 1-31 of a-z, 0-9, _ and -)`},
		},
		{
			name:  "name too short",
			files: map[string]string{"a.yaml": edit(acmeYAML, "name: acme", "name: a")},
			want:  []string{`suppliers/a.yaml:1: name "a" must match ^[a-z][a-z0-9_-]{1,31}$ (a lowercase letter, then 1-31 of a-z, 0-9, _ and -)`},
		},
		{
			name:  "file name differs",
			files: map[string]string{"acme-health.yaml": acmeYAML},
			want:  []string{`suppliers/acme-health.yaml:1: name "acme" does not match the file name "acme-health.yaml"`},
		},
		{
			name:  "duplicate names",
			files: map[string]string{"acme.yaml": acmeYAML, "acme.yml": edit(acmeYAML, edKey, globexKey)},
			want:  []string{`suppliers/acme.yml:1: duplicate supplier name "acme" (also in suppliers/acme.yaml:1)`},
		},
		{
			name:  "bad email",
			files: map[string]string{"acme.yaml": edit(acmeYAML, "data@acme.example", "data.acme.example")},
			want:  []string{`suppliers/acme.yaml:2: email: "data.acme.example" is not a single email address: mail: missing '@' or angle-addr`},
		},
		{
			name:  "two emails",
			files: map[string]string{"acme.yaml": edit(acmeYAML, "data@acme.example", `"a@acme.example, b@acme.example"`)},
			want:  []string{`suppliers/acme.yaml:2: email: "a@acme.example, b@acme.example" is not a single email address: mail: expected single address, got ", b@acme.example"`},
		},
		{
			name: "bad addresses",
			files: map[string]string{"acme.yaml": edit(acmeYAML, `allowed_ips: ["203.0.113.0/24"]`,
				"allowed_ips:\n  - 203.0.113.300\n  - 10.0.0.0/33\n  - 203.0.113.7/24\n  - fe80::1%eth0\n  - 2001:db8::1/32\n  - ::ffff:192.0.2.1")},
			want: []string{
				`suppliers/acme.yaml:4: allowed_ips[0]: "203.0.113.300" is not an IP address or CIDR`,
				`suppliers/acme.yaml:5: allowed_ips[1]: "10.0.0.0/33" is not a valid CIDR`,
				`suppliers/acme.yaml:6: allowed_ips[2]: "203.0.113.7/24" has host bits set (did you mean 203.0.113.0/24?)`,
				`suppliers/acme.yaml:7: allowed_ips[3]: "fe80::1%eth0" is not an IP address or CIDR`,
				`suppliers/acme.yaml:8: allowed_ips[4]: "2001:db8::1/32" has host bits set (did you mean 2001:db8::/32?)`,
			},
		},
		{
			name:  "no addresses",
			files: map[string]string{"acme.yaml": edit(acmeYAML, `allowed_ips: ["203.0.113.0/24"]`, "allowed_ips: []")},
			want:  []string{`suppliers/acme.yaml:3: allowed_ips must list at least one entry`},
		},
		{
			name: "bad keys",
			files: map[string]string{"acme.yaml": edit(acmeYAML, `ssh_keys: ["`+edKey+`"]`,
				"ssh_keys:\n"+
					"  - ssh-ed25519 AAAAnotbase64!! laptop\n"+ // 5
					"  - |\n"+ // 6
					"    -----BEGIN OPENSSH PRIVATE KEY-----\n"+
					"    b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"+
					"    -----END OPENSSH PRIVATE KEY-----\n"+
					`  - from="10.0.0.1",no-pty `+edKey+"\n"+ // 10
					"  - |\n"+ // 11
					"    "+edKey+"\n"+
					"    "+globexKey+"\n"+
					"  - "+rsa1024Key+"\n"+ // 14
					"  - ssh-dss AAAAB3NzaC1kc3MAAAABFwAAAAELAAAAAQQAAAABCA== old dsa\n"+ // 15
					"  - "+ecdsaKey+"\n"+
					"  - "+edKey+"\n"+ // 17
					"  - "+edKey)}, // 18
			want: []string{
				`suppliers/acme.yaml:5: ssh_keys[0]: not a valid SSH public key: ssh: no key found; last parsing error for ignored line: illegal base64 data at input byte 4`,
				`suppliers/acme.yaml:6: ssh_keys[1]: this is a private key: paste the public key (the .pub file) instead, and replace this key pair, as it has been exposed`,
				`suppliers/acme.yaml:10: ssh_keys[2]: authorized_keys options are not supported (from="10.0.0.1",no-pty); give only the key`,
				`suppliers/acme.yaml:11: ssh_keys[3]: must be a single line with one key`,
				`suppliers/acme.yaml:14: ssh_keys[4]: RSA key has 1024 bits; at least 2048 are required`,
				`suppliers/acme.yaml:15: ssh_keys[5]: not a valid SSH public key: ssh: no key found; last parsing error for ignored line: illegal base64 data at input byte 0`,
				`suppliers/acme.yaml:18: ssh_keys[8]: duplicate ssh key ` + edFingerprint + ` (also at line 17)`,
			},
		},
		{
			name:  "no keys",
			files: map[string]string{"acme.yaml": edit(acmeYAML, `ssh_keys: ["`+edKey+`"]`, "ssh_keys: []")},
			want:  []string{`suppliers/acme.yaml:4: ssh_keys must list at least one entry`},
		},
		{
			name:  "key shared between suppliers",
			files: map[string]string{"acme.yaml": acmeYAML, "globex.yaml": edit(globexYAML, globexKey, rsaKey+`", "`+edKey)},
			want:  []string{`suppliers/globex.yaml:4: ssh key ` + edFingerprint + ` is also used in suppliers/acme.yaml:4`},
		},
		{
			name: "bad targets",
			files: map[string]string{"acme.yaml": edit(acmeYAML, "url: s3://land/acme", "url: s3:///acme\n  kms_key: [k]") +
				"egress:\n  url: azure://container\n"},
			want: []string{
				`suppliers/acme.yaml:6: destination.url: "s3:///acme" has no bucket: write s3://<bucket>/<prefix>`,
				`suppliers/acme.yaml:7: destination.kms_key: expected a string, got a list`,
				`suppliers/acme.yaml:9: egress.url: "azure://container": unsupported scheme "azure" (use a path or a file, s3, gs, azblob or mem URL)`,
			},
		},
		{
			name:  "target without url",
			files: map[string]string{"acme.yaml": edit(acmeYAML, "url: s3://land/acme", "kms_key: k") + "egress: s3://egress\n"},
			want: []string{
				`suppliers/acme.yaml:6: missing required key "url"`,
				`suppliers/acme.yaml:7: egress: expected a mapping, got a string`,
			},
		},
		{
			name:  "null egress means none",
			files: map[string]string{"acme.yaml": acmeYAML + "egress:\n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			files := map[string]string{"airlock.yaml": "node: test\n"}
			for name, content := range tt.files {
				files["suppliers/"+name] = content
			}
			dir := writeTree(t, files)
			_, err := Load(filepath.Join(dir, "airlock.yaml"))
			diffLines(t, messages(t, err, dir), tt.want)
		})
	}
}

func TestLoadSuppliersDirectly(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "suppliers")
	writeFile(t, filepath.Join(dir, "globex.yaml"), edit(globexYAML, "s3://land/globex", "out/globex"))
	s, err := LoadSuppliers(dir, root)
	if err != nil {
		t.Fatal(err)
	}
	g, ok := s.Lookup("globex")
	if !ok || g.Destination.URL != filepath.Join(root, "out/globex") || g.File != filepath.Join(dir, "globex.yaml") {
		t.Errorf("globex = %+v", g)
	}

	_, err = LoadSuppliers(filepath.Join(root, "missing"), root)
	diffLines(t, messages(t, err, root), []string{"missing: cannot read suppliers directory: no such file or directory"})

	if err := os.Mkdir(filepath.Join(dir, "odd.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = LoadSuppliers(dir, root)
	diffLines(t, messages(t, err, root), []string{"suppliers/odd.yaml: cannot read: is a directory"})
}

func TestAllowsIP(t *testing.T) {
	t.Parallel()
	s := &Supplier{AllowedIPs: []netip.Prefix{
		netip.MustParsePrefix("203.0.113.0/24"),
		netip.MustParsePrefix("2001:db8::/32"),
	}}
	tests := []struct {
		addr string
		want bool
	}{
		{"203.0.113.9", true},
		{"::ffff:203.0.113.9", true}, // IPv4 client on a dual-stack listener
		{"203.0.114.1", false},
		{"2001:db8::7", true},
		{"2001:db8::7%eth0", true},
		{"2001:db9::7", false},
		{"::1", false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			t.Parallel()
			if got := s.AllowsIP(netip.MustParseAddr(tt.addr)); got != tt.want {
				t.Errorf("AllowsIP(%s) = %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
}

func TestMappedPrefixMatchesUnmappedClients(t *testing.T) {
	t.Parallel()
	p, err := parsePrefix("::ffff:192.0.2.0/120")
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParsePrefix("192.0.2.0/24"); p != want {
		t.Errorf("got %s, want %s", p, want)
	}
}

func TestAuthorize(t *testing.T) {
	t.Parallel()
	var keys []AuthorizedKey
	for _, line := range []string{edKey, rsaKey} {
		k, err := parseAuthorizedKey(line)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	s := &Supplier{Name: "acme", SSHKeys: keys}
	tests := []struct {
		key         string
		wantComment string
		wantOK      bool
	}{
		{edKey, "acme laptop", true},
		{rsaKey, "acme build server", true},
		{globexKey, "", false},
	}
	for _, tt := range tests {
		t.Run(strings.Fields(tt.key)[0]+" "+tt.wantComment, func(t *testing.T) {
			t.Parallel()
			// Parse afresh, as the SSH server hands over its own key value.
			pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(tt.key))
			if err != nil {
				t.Fatal(err)
			}
			got, ok := s.Authorize(pub)
			if ok != tt.wantOK || got.Comment != tt.wantComment {
				t.Errorf("Authorize = %+v, %v; want comment %q, %v", got, ok, tt.wantComment, tt.wantOK)
			}
			if ok && got.Fingerprint != ssh.FingerprintSHA256(pub) {
				t.Errorf("fingerprint %s", got.Fingerprint)
			}
		})
	}
}

// FuzzLoadSupplier feeds arbitrary bytes to the loader as a supplier file:
// it must never panic, and must either load or explain with a line number.
func FuzzLoadSupplier(f *testing.F) {
	for _, seed := range []string{
		edit(acmeYAML, "name: acme", "name: fuzz"),
		edit(acmeYAML, "name: acme", "name: fuzz") + "egress:\n  url: s3://e/x\n  kms_key: k\n",
		"name: &n fuzz\nemail: *n\n",
		"allowed_ips: [1.2.3.4/33, ::1]\nssh_keys: [\"ssh-rsa AAAA\"]\n",
		"- a\n- b\n",
		"{",
		"",
	} {
		f.Add([]byte(seed))
	}
	// One directory per fuzzing process: iterations within it run one at a time.
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, "fuzz.yaml"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := LoadSuppliers(dir, dir)
		if err == nil {
			if _, ok := s.Lookup("fuzz"); !ok || s.Len() != 1 {
				t.Fatalf("loaded without error but no supplier fuzz: %+v", s.All())
			}
			return
		}
		errs, ok := err.(Errors)
		if !ok || len(errs) == 0 {
			t.Fatalf("error %T %v, want non-empty Errors", err, err)
		}
		for _, e := range errs {
			if e.Line < 1 || e.Msg == "" {
				t.Errorf("error without line or message: %q", e.Error())
			}
		}
	})
}
