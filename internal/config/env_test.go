package config

import (
	"path/filepath"
	"testing"
)

// envFixture is what testdata/env reads from the environment.
var envFixture = map[string]string{
	"SFTP_PORT":            "2022",
	"AIRLOCK_DATABASE_URL": "postgres://airlock:s3cret@db.prod/airlock",
	"AIRLOCK_ENV":          "prod",
	"MAX_FILE_SIZE":        "20GB",
	"WORKERS":              "8",
	"MAIL_DOMAIN":          "prod.example.org",
	"ACME_CIDR":            "198.51.100.0/24",
	"ACME_KMS_KEY":         "arn:aws:kms:eu-west-2:111122223333:key/prod",
}

// The environment is process-wide, so these tests set it with t.Setenv
// and cannot run in parallel.

func TestEnvExpansion(t *testing.T) {
	for k, v := range envFixture {
		t.Setenv(k, v)
	}
	cfg, err := Load("testdata/env/airlock.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, got, want string }{
		{"sftp.listen", cfg.SFTP.Listen, "0.0.0.0:2022"},
		{"database", cfg.Database, "postgres://airlock:s3cret@db.prod/airlock"},
		{"landing", cfg.Landing, "s3://airlock-landing-prod/in?region=eu-west-2"},
		{"quarantine", cfg.Quarantine, "s3://airlock-quarantine-prod"},
		{"notify.smtp.addr", cfg.Notify.SMTP.Addr, "smtp.prod.example.org:587"},
		{"notify.smtp.from", cfg.Notify.SMTP.From, "airlock <airlock@prod.example.org>"},
		{"notify.operators[0]", cfg.Notify.Operators[0], "ops+${AIRLOCK_ENV}@example.org"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if cfg.Limits.MaxFileSize != 20e9 || cfg.Pipeline.Workers != 8 {
		t.Errorf("max_file_size %d, workers %d: want 20GB and 8, read as a size and a number", cfg.Limits.MaxFileSize, cfg.Pipeline.Workers)
	}
	acme, ok := cfg.Suppliers.Lookup("acme")
	if !ok {
		t.Fatal("supplier acme not loaded")
	}
	if acme.Destination.URL != "s3://acme-prod/incoming" || acme.Destination.KMSKey != envFixture["ACME_KMS_KEY"] {
		t.Errorf("destination %+v: the supplier file is expanded too", acme.Destination)
	}
	if len(acme.AllowedIPs) != 1 || acme.AllowedIPs[0].String() != "198.51.100.0/24" {
		t.Errorf("allowed_ips %v", acme.AllowedIPs)
	}
}

// TestEnvUnset: every unset variable is an error at its line, in
// airlock.yaml and in supplier files, and names the variable.
func TestEnvUnset(t *testing.T) {
	for k, v := range envFixture {
		if k != "AIRLOCK_ENV" && k != "WORKERS" {
			t.Setenv(k, v)
		}
	}
	dir, err := filepath.Abs("testdata/env")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Load(filepath.Join(dir, "airlock.yaml"))
	diffLines(t, messages(t, err, dir), []string{
		`airlock.yaml:6: landing: environment variable AIRLOCK_ENV is not set (write $$ for a literal $)`,
		`airlock.yaml:7: quarantine: environment variable AIRLOCK_ENV is not set (write $$ for a literal $)`,
		`airlock.yaml:11: pipeline.workers: environment variable WORKERS is not set (write $$ for a literal $)`,
		`suppliers/acme.yaml:6: destination.url: environment variable AIRLOCK_ENV is not set (write $$ for a literal $)`,
	})
}

func TestExpand(t *testing.T) {
	t.Parallel()
	env := map[string]string{"A": "x", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	tests := []struct{ in, want, err string }{
		{in: "${A}-${A}", want: "x-x"},
		{in: "${EMPTY}", want: ""},
		{in: "$$", want: "$"},
		{in: "$${A}", want: "${A}"},
		{in: "p$ss$", want: "p$ss$"},
		{in: "$A", want: "$A"},
		{in: "${B}", err: "environment variable B is not set (write $$ for a literal $)"},
		{in: "${B}/${A}/${C}/${B}", err: "environment variables B, C are not set (write $$ for a literal $)"},
		{in: "a${A", err: `"${A": ${ without a closing } (write $$ for a literal $)`},
		{in: "${1A}", err: `${1A}: "1A" is not an environment variable name (letters, digits and _, not starting with a digit)`},
		{in: "${}", err: `${}: "" is not an environment variable name (letters, digits and _, not starting with a digit)`},
	}
	for _, tt := range tests {
		got, err := expand(tt.in, lookup)
		switch {
		case tt.err != "" && (err == nil || err.Error() != tt.err):
			t.Errorf("expand(%q): error %v, want %s", tt.in, err, tt.err)
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("expand(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}
