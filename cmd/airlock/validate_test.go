package main

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	supplier := func(name, ips, key string) string {
		return "name: " + name + "\nemail: data@" + name + ".example\nallowed_ips: [" + ips + "]\n" +
			"ssh_keys: [\"" + key + "\"]\ndestination:\n  url: s3://land/" + name + "\n"
	}
	tests := []struct {
		name       string
		files      map[string]string
		wantExit   int
		wantStdout string
		wantStderr []string
	}{
		{
			name: "clean",
			files: map[string]string{
				"airlock.yaml":        "node: n\n",
				"suppliers/acme.yaml": supplier("acme", "203.0.113.0/24", testEdKey),
			},
			wantStdout: "airlock.yaml: ok (1 supplier, 0 warnings)\n",
		},
		{
			name: "with datasets",
			files: map[string]string{
				"airlock.yaml":          "node: n\n",
				"suppliers/acme.yaml":   supplier("acme", "203.0.113.0/24", testEdKey),
				"datasets/out_one.yaml": "name: out_one\npaperwork: https://wiki.example/dpia\nusers: [alpha_user_one]\nbucket: target-bucket\n",
			},
			wantStdout: "airlock.yaml: ok (1 supplier, 1 dataset, 0 warnings)\n",
		},
		{
			name: "a dataset error",
			files: map[string]string{
				"airlock.yaml":          "node: n\n",
				"suppliers/acme.yaml":   supplier("acme", "203.0.113.0/24", testEdKey),
				"datasets/out_one.yaml": "name: out_one\npaperwork: https://wiki.example/dpia\nusers: [alpha_user_one]\n",
			},
			wantExit: 1,
			wantStderr: []string{
				`datasets/out_one.yaml:1: missing bucket (a push dataset) or pull_arns (a pull dataset)`,
				`1 error, 0 warnings found`,
			},
		},
		{
			name: "warnings only",
			files: map[string]string{
				"airlock.yaml":        "node: n\n",
				"suppliers/acme.yaml": supplier("acme", "0.0.0.0/0", testRSA2048Key),
			},
			wantStdout: "airlock.yaml: ok (1 supplier, 2 warnings)\n",
			wantStderr: []string{
				`suppliers/acme.yaml:3: warning: allowed_ips[0]: 0.0.0.0/0 is open to every IPv4 address on the internet`,
				`suppliers/acme.yaml:4: warning: ssh_keys[0]: RSA key ` + testRSA2048Fingerprint + ` has 2048 bits; 3072 or more are recommended (or use ssh-ed25519)`,
			},
		},
		{
			name: "errors, then warnings",
			files: map[string]string{
				"airlock.yaml":          "node: n\nsftp:\n  max_auth_tries: 50\n",
				"suppliers/acme.yaml":   supplier("acme", "0.0.0.0/0", testEdKey),
				"suppliers/globex.yaml": supplier("globex", "192.0.2.1", "ssh-dss AAAAB3NzaC1kc3MAAAABFw== old"),
			},
			wantExit: 1,
			wantStderr: []string{
				`airlock.yaml:3: sftp.max_auth_tries must be from 1 to 20, got 50`,
				`suppliers/globex.yaml:4: ssh_keys[0]: DSA keys are not accepted: ssh-dss is limited to 1024 bits and no longer supported by OpenSSH; generate an ed25519 key (ssh-keygen -t ed25519) and paste its .pub`,
				`suppliers/acme.yaml:3: warning: allowed_ips[0]: 0.0.0.0/0 is open to every IPv4 address on the internet`,
				`2 errors, 1 warning found`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := writeTree(t, tt.files)
			cfg := filepath.Join(dir, "airlock.yaml")
			stdout, stderr, err := run(t, "validate", "--config", cfg)
			exit := 0
			if err != nil {
				var ee exitError
				if !errors.As(err, &ee) {
					t.Fatalf("validate: %v", err)
				}
				exit = ee.code
			}
			if exit != tt.wantExit {
				t.Errorf("exit %d, want %d", exit, tt.wantExit)
			}
			if got := strings.ReplaceAll(stdout, dir+string(filepath.Separator), ""); got != tt.wantStdout {
				t.Errorf("stdout %q, want %q", got, tt.wantStdout)
			}
			got := strings.Split(strings.TrimSuffix(strings.ReplaceAll(stderr, dir+string(filepath.Separator), ""), "\n"), "\n")
			if stderr == "" {
				got = nil
			}
			if strings.Join(got, "\n") != strings.Join(tt.wantStderr, "\n") {
				t.Errorf("stderr:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.wantStderr, "\n"))
			}
		})
	}
}
