package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

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
				`suppliers/acme.yaml:15: ssh_keys[5]: DSA keys are not accepted: ssh-dss is limited to 1024 bits and no longer supported by OpenSSH; generate an ed25519 key (ssh-keygen -t ed25519) and paste its .pub`,
				`suppliers/acme.yaml:18: ssh_keys[8]: duplicate ssh key ` + edFingerprint + ` (also at line 17)`,
			},
		},
		{
			name: "more key mistakes",
			files: map[string]string{"acme.yaml": edit(acmeYAML, `ssh_keys: ["`+edKey+`"]`,
				"ssh_keys:\n"+
					"  - no-pty ssh-dss AAAAB3NzaC1kc3MAAAABFwAAAAELAAAAAQQAAAABCA== old dsa\n"+ // 5
					"  - |\n"+ // 6
					"    PuTTY-User-Key-File-3: ssh-ed25519\n"+
					"    Encryption: none\n"+
					"  - |\n"+ // 9
					"    ---- BEGIN SSH2 PUBLIC KEY ----\n"+
					"    AAAAC3NzaC1lZDI1NTE5AAAAIDr5tW0lT06rzWs+t3WxQuXYObh8M7xGzlw1GmLBMTTT\n"+
					"    ---- END SSH2 PUBLIC KEY ----\n"+
					"  - 42\n"+ // 13
					"  - [a, b]\n"+ // 14
					"  - {expires: 2027-03-31}\n"+ // 15
					"  - {key: \""+edKey+"\", expires: 31/03/2027}\n"+ // 16
					"  - {key: \""+edKey+"\", expires: [2027]}\n"+ // 17
					"  - {key: \""+edKey+"\", expiry: 2027-03-31}\n")}, // 18
			want: []string{
				`suppliers/acme.yaml:5: ssh_keys[0]: DSA keys are not accepted: ssh-dss is limited to 1024 bits and no longer supported by OpenSSH; generate an ed25519 key (ssh-keygen -t ed25519) and paste its .pub`,
				`suppliers/acme.yaml:6: ssh_keys[1]: this is a PuTTY private key (.ppk): paste the public key in OpenSSH format instead (PuTTYgen shows it as "Public key for pasting into OpenSSH authorized_keys file"), and replace this key pair, as it has been exposed`,
				"suppliers/acme.yaml:9: ssh_keys[2]: this is a public key in RFC 4716 (SSH2) format: convert it to one OpenSSH line with `ssh-keygen -i -f key.pub`",
				`suppliers/acme.yaml:13: ssh_keys[3]: expected a key line, or a mapping with key and expires, got a number`,
				`suppliers/acme.yaml:14: ssh_keys[4]: expected a key line, or a mapping with key and expires, got a list`,
				`suppliers/acme.yaml:15: missing required key "key"`,
				`suppliers/acme.yaml:16: ssh_keys[6].expires: "31/03/2027" is neither a date like 2027-03-31 nor an RFC 3339 time like 2027-03-31T17:00:00Z`,
				`suppliers/acme.yaml:17: ssh_keys[7].expires: expected a date like 2027-03-31, got a list`,
				`suppliers/acme.yaml:18: unknown key "expiry" (did you mean "expires"?)`,
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
		{
			name:  "unknown overwrite policy",
			files: map[string]string{"acme.yaml": acmeYAML + "overwrite: Deny\n", "globex.yml": globexYAML + "overwrite: [allow]\n"},
			want: []string{
				`suppliers/acme.yaml:7: overwrite: "Deny" must be allow, deny or version`,
				`suppliers/globex.yml:7: overwrite: expected a string, got a list`,
			},
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

// TestSupplierOverwrite checks the overwrite policy a supplier file sets,
// and its default.
func TestSupplierOverwrite(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ yaml, want string }{
		{"", OverwriteAllow},
		{"overwrite:\n", OverwriteAllow},
		{"overwrite: allow\n", OverwriteAllow},
		{"overwrite: deny\n", OverwriteDeny},
		{"overwrite: version\n", OverwriteVersion},
	} {
		t.Run(tt.want+"/"+strings.TrimSpace(tt.yaml), func(t *testing.T) {
			t.Parallel()
			dir := writeTree(t, map[string]string{"airlock.yaml": "node: test\n", "suppliers/acme.yaml": acmeYAML + tt.yaml})
			c, err := Load(filepath.Join(dir, "airlock.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			if s, _ := c.Suppliers.Lookup("acme"); s.Overwrite != tt.want {
				t.Errorf("overwrite %q, want %q", s.Overwrite, tt.want)
			}
		})
	}
}

// More public keys, generated with ssh-keygen for these tests.
const (
	rsa2048Key         = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCm+xeKV1S7mKl5x9Ts8EH1ikIvKVlzOjh10UjdBZEssLEcdmRSMaMGmlZ3QyMt1GA/xpDYhlwEHw/ocZU1yU6uDoxk6I24yISqvctYbeAI91jxIHCq3suw9usveYyMyZ00qOdR8vZf7GCyIgZn6oQoG7r43dAuKOowKyP8FlCQPVae3npWn69X1ux0JkKa5ipBdVJPmWujuKwnKUHeMrVPvrOz1IJjuMMhFSa+32gxg+Wmr3QvRuzZSmgDqQnPHH7KnKuCmLSJV7UP/ZA70+75XzQaPKONDZE6iX5wJuYyM9hG+ZCn4bs7CPhNcuNe+wwr6xTO6K7XXEflR0TCEfT1 acme 2048"
	rsa2048Fingerprint = "SHA256:kIBrvygKOVcd4wT39HNE/D5o/Iyo7O00GgkumfqArf4"
	spareKey           = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBQjhbCjzbCYPtSQnqmAPGekhcENiaIkavO9zyiuOWXL acme spare"
	spareFingerprint   = "SHA256:Jc8mCbAec0InxaJdatVd+VmBAMHNCcM8k2HMGsxnhHc"
)

// TestSupplierWarnings: risky but legal settings load, with a warning at
// their line; expiry warnings are as of the load.
func TestSupplierWarnings(t *testing.T) {
	t.Parallel()
	now := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	ecdsaFingerprint := mustKey(t, ecdsaKey).Fingerprint
	yaml := edit(edit(acmeYAML, `allowed_ips: ["203.0.113.0/24"]`,
		"allowed_ips:\n"+
			"  - 0.0.0.0/0\n"+ // 4
			"  - ::ffff:0.0.0.0/96\n"+ // 5: the same, IPv4-mapped
			"  - 10.0.0.0/7\n"+ // 6
			"  - 10.0.0.0/8\n"+ // 7: fine
			"  - ::/0\n"+ // 8
			"  - 2000::/3\n"+ // 9
			"  - 2001:db8::/32"), // 10: fine
		`ssh_keys: ["`+edKey+`"]`,
		"ssh_keys:\n"+
			"  - \""+rsa2048Key+"\"\n"+ // 12
			"  - \""+ecdsaKey+"\"\n"+ // 13
			"  - \""+rsaKey+"\"\n"+ // 14: fine
			"  - key: \""+edKey+"\"\n"+ // 15
			"    expires: 2027-03-10\n"+
			"  - key: \""+globexKey+"\"\n"+ // 17
			"    expires: \"2027-02-28T23:59:59Z\"\n"+
			"  - {key: \""+spareKey+"\", expires: 2027-05-01}") // 19: fine, beyond 30 days
	dir := writeTree(t, map[string]string{"suppliers/acme.yaml": yaml})
	s, errs, warns := loadSuppliers(filepath.Join(dir, "suppliers"), dir, now)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	want := []string{
		`suppliers/acme.yaml:4: warning: allowed_ips[0]: 0.0.0.0/0 is open to every IPv4 address on the internet`,
		`suppliers/acme.yaml:5: warning: allowed_ips[1]: 0.0.0.0/0 is open to every IPv4 address on the internet`,
		`suppliers/acme.yaml:6: warning: allowed_ips[2]: 10.0.0.0/7 is a very broad range (shorter than /8 for IPv4)`,
		`suppliers/acme.yaml:8: warning: allowed_ips[4]: ::/0 is open to every IPv6 address on the internet`,
		`suppliers/acme.yaml:9: warning: allowed_ips[5]: 2000::/3 is a very broad range (shorter than /16 for IPv6)`,
		`suppliers/acme.yaml:12: warning: ssh_keys[0]: RSA key ` + rsa2048Fingerprint + ` has 2048 bits; 3072 or more are recommended (or use ssh-ed25519)`,
		`suppliers/acme.yaml:13: warning: ssh_keys[1]: key ` + ecdsaFingerprint + ` is ECDSA P-256 (ecdsa-sha2-nistp256); prefer ssh-ed25519`,
		`suppliers/acme.yaml:15: warning: ssh_keys[3]: key ` + edFingerprint + ` expires on 2027-03-10, in 10 days`,
		`suppliers/acme.yaml:17: warning: ssh_keys[4]: key ` + globexFingerprint + ` expired on 2027-02-28; it will be refused`,
	}
	diffLines(t, messages(t, warns, dir), want)
	diffLines(t, messages(t, s.Warnings(), dir), want)

	// A warning does not stop the supplier from loading, nor the keys.
	acme, _ := s.Lookup("acme")
	if len(acme.SSHKeys) != 6 || len(acme.AllowedIPs) != 7 {
		t.Errorf("acme has %d keys and %d prefixes", len(acme.SSHKeys), len(acme.AllowedIPs))
	}
}

func mustKey(t *testing.T, line string) AuthorizedKey {
	t.Helper()
	k, err := parseAuthorizedKey(line)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestKeyDetails: the type, size and expiry of each key as loaded.
func TestKeyDetails(t *testing.T) {
	t.Parallel()
	yaml := edit(acmeYAML, `ssh_keys: ["`+edKey+`"]`,
		"ssh_keys:\n"+
			"  - \""+rsaKey+"\"\n"+
			"  - {key: \""+edKey+"\", expires: 2027-03-31}\n"+
			"  - {key: \""+ecdsaKey+"\", expires: \"2027-03-31T17:00:00+02:00\"}\n"+
			"  - {key: \""+rsa2048Key+"\", expires: 2027-04-01T00:00:00Z}\n"+
			"  - key: \""+spareKey+"\"\n"+
			"    expires:\n")
	dir := writeTree(t, map[string]string{"suppliers/acme.yaml": yaml})
	s, err := LoadSuppliers(filepath.Join(dir, "suppliers"), dir)
	if err != nil {
		t.Fatal(err)
	}
	acme, _ := s.Lookup("acme")
	type row struct {
		Type, Comment string
		Bits          int
		Expires       time.Time
		Date          string
	}
	var got []row
	for _, k := range acme.SSHKeys {
		got = append(got, row{k.Type, k.Comment, k.Bits, k.Expires, k.ExpiryDate()})
	}
	endOfMarch := time.Date(2027, 4, 1, 0, 0, 0, 0, time.UTC)
	want := []row{
		{"ssh-rsa", "acme build server", 3072, time.Time{}, ""},
		{"ssh-ed25519", "acme laptop", 0, endOfMarch, "2027-03-31"},
		{"ecdsa-sha2-nistp256", "ecdsa", 0, time.Date(2027, 3, 31, 15, 0, 0, 0, time.UTC), "2027-03-31"},
		{"ssh-rsa", "acme 2048", 2048, endOfMarch, "2027-03-31"},
		{"ssh-ed25519", "acme spare", 0, time.Time{}, ""},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("keys:\n got %+v\nwant %+v", got, want)
	}

	k := acme.SSHKeys[1]
	for _, tt := range []struct {
		at   time.Time
		want bool
	}{
		{endOfMarch.Add(-time.Nanosecond), false}, // the last instant of 2027-03-31
		{endOfMarch, true},
		{endOfMarch.AddDate(1, 0, 0), true},
		{time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), false},
	} {
		if got := k.ExpiredAt(tt.at); got != tt.want {
			t.Errorf("ExpiredAt(%s) = %v, want %v", tt.at, got, tt.want)
		}
	}
	if acme.SSHKeys[0].ExpiredAt(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Error("a key without expiry expired")
	}
	day := 24 * time.Hour
	for _, tt := range []struct {
		key  AuthorizedKey
		at   time.Time
		want KeyStatus
	}{
		{acme.SSHKeys[0], endOfMarch.AddDate(100, 0, 0), KeyOK},
		{k, endOfMarch.Add(-31 * day), KeyOK},
		{k, endOfMarch.Add(-30 * day), KeyExpiring},
		{k, endOfMarch.Add(-time.Nanosecond), KeyExpiring},
		{k, endOfMarch, KeyExpired},
	} {
		if got := tt.key.StatusAt(tt.at, 30*day); got != tt.want {
			t.Errorf("StatusAt(%s, 30d) of %s = %s, want %s", tt.at, tt.key.Comment, got, tt.want)
		}
	}
}

func TestDaysLeft(t *testing.T) {
	t.Parallel()
	now := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		until time.Duration
		want  int
	}{
		{-time.Hour, 0}, {0, 0}, {time.Second, 1}, {24 * time.Hour, 1}, {24*time.Hour + time.Second, 2}, {30 * 24 * time.Hour, 30},
	} {
		if got := DaysLeft(now.Add(tt.until), now); got != tt.want {
			t.Errorf("DaysLeft(now+%v) = %d, want %d", tt.until, got, tt.want)
		}
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
		edit(edit(acmeYAML, "name: acme", "name: fuzz"), `ssh_keys: ["`+edKey+`"]`, "ssh_keys:\n  - {key: \""+globexKey+"\", expires: 2027-03-31}"),
		"ssh_keys:\n  - key: ssh-dss AAAA\n    expires: \"2027-03-31T17:00:00Z\"\n  - 7\n",
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
