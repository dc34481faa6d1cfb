package config

import (
	"path/filepath"
	"testing"
	"time"
)

func TestAudit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		want []string
		// Checkpoints and SigningKey relative to the config root unless absolute or a URL.
		audit Audit
	}{
		{name: "defaults", yaml: "audit: {}\n",
			audit: Audit{Checkpoints: "state/checkpoints", SigningKey: "state/audit_ed25519", CheckpointInterval: 5 * time.Minute}},
		{name: "set", yaml: "audit:\n  checkpoints: s3://audit-lock/airlock?region=eu-west-2\n  signing_key: /run/secrets/audit_ed25519\n  checkpoint_interval: 1m\n",
			audit: Audit{Checkpoints: "s3://audit-lock/airlock?region=eu-west-2", SigningKey: "/run/secrets/audit_ed25519", CheckpointInterval: time.Minute}},
		{name: "relative", yaml: "audit:\n  checkpoints: ../anchors\n  signing_key: keys/audit\n",
			audit: Audit{Checkpoints: "../anchors", SigningKey: "keys/audit", CheckpointInterval: 5 * time.Minute}},
		{name: "invalid", yaml: "audit:\n  checkpoints: ftp://x\n  signing_key: [a]\n  checkpoint_interval: 0\n  interval: 1m\n", want: []string{
			`airlock.yaml:2: audit.checkpoints: "ftp://x": unsupported scheme "ftp" (use a path or a file, s3, gs, azblob or mem URL)`,
			`airlock.yaml:3: audit.signing_key: expected a string, got a list`,
			`airlock.yaml:4: audit.checkpoint_interval must be greater than 0`,
			`airlock.yaml:5: unknown key "interval"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := writeTree(t, map[string]string{"airlock.yaml": tt.yaml, "suppliers/README.md": "not a supplier"})
			cfg, _, err := Check(filepath.Join(dir, "airlock.yaml"))
			diffLines(t, messages(t, err, dir), tt.want)
			if cfg == nil {
				return
			}
			want := tt.audit
			for _, p := range []*string{&want.Checkpoints, &want.SigningKey} {
				if !filepath.IsAbs(*p) && !urlScheme.MatchString(*p) {
					*p = filepath.Join(dir, *p)
				}
			}
			if cfg.Audit != want {
				t.Errorf("audit = %+v, want %+v", cfg.Audit, want)
			}
		})
	}
}
