package config

import (
	"path/filepath"
	"testing"
)

// TestPolicyRules checks the policy section of airlock.yaml: want lists
// every error, then every warning.
func TestPolicyRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		want       []string
		wantPolicy *Policy
	}{
		{
			name: "valid",
			yaml: "policy:\n  account_id: \"111122223333\"\n  ingestion_role_arn: arn:aws:iam::111122223333:role/airlock-ingestion\n" +
				"  mover_role_arn: arn:aws:iam::111122223333:role/airlock-mover\n  user_arn_template: \"arn:aws:iam::{account}:role/alpha_user_{user}\"\n",
			wantPolicy: &Policy{
				Partition: "aws", AccountID: "111122223333", DenyTLSBelow: "1.2",
				IngestionRoleARN: "arn:aws:iam::111122223333:role/airlock-ingestion",
				MoverRoleARN:     "arn:aws:iam::111122223333:role/airlock-mover",
				UserARNTemplate:  "arn:aws:iam::{account}:role/alpha_user_{user}",
			},
		},
		{
			name:       "other partition, TLS 1.3",
			yaml:       "policy:\n  partition: aws-us-gov\n  deny_tls_below: \"1.3\"\n  user_arn_template: arn:aws-us-gov:iam::111122223333:user/{user}\n",
			wantPolicy: &Policy{Partition: "aws-us-gov", DenyTLSBelow: "1.3", UserARNTemplate: "arn:aws-us-gov:iam::111122223333:user/{user}"},
		},
		{
			name: "bad values",
			yaml: "policy:\n  account_id: 11112222333\n  ingestion_role_arn: airlock-ingestion\n  mover_role_arn: arn:aws:iam::111122223333:group/movers\n" +
				"  partition: amazon\n  deny_tls_below: \"1.1\"\n",
			want: []string{
				`airlock.yaml:2: policy.account_id: expected a string, got a number`,
				`airlock.yaml:3: policy.ingestion_role_arn: "airlock-ingestion" is not an ARN (arn:partition:service:region:account:resource)`,
				`airlock.yaml:4: policy.mover_role_arn: "arn:aws:iam::111122223333:group/movers" must name a role, a user or the account root, without wildcards`,
				`airlock.yaml:5: policy.partition: "amazon" is not aws, aws-cn, aws-us-gov…`,
				`airlock.yaml:6: policy.deny_tls_below: "1.1" must be 1.2, 1.3 or none`,
			},
		},
		{
			name: "bad templates",
			yaml: "policy:\n  user_arn_template: \"arn:aws:iam::{account}:role/{user}\"\n",
			want: []string{`airlock.yaml:2: policy.user_arn_template: "arn:aws:iam::{account}:role/{user}" uses {account}, but policy.account_id is not set`},
		},
		{
			name: "template without user",
			yaml: "policy:\n  user_arn_template: arn:aws:iam::111122223333:role/alpha\n",
			want: []string{`airlock.yaml:2: policy.user_arn_template: "arn:aws:iam::111122223333:role/alpha" must contain {user}, or every user would be one principal`},
		},
		{
			name: "template with an unknown placeholder",
			yaml: "policy:\n  user_arn_template: arn:aws:iam::111122223333:role/{team}_{user}\n",
			want: []string{`airlock.yaml:2: policy.user_arn_template: "arn:aws:iam::111122223333:role/{team}_{user}": unknown placeholder {team} (use {user} and {account})`},
		},
		{
			name: "template that is no ARN",
			yaml: "policy:\n  user_arn_template: \"{user}\"\n",
			want: []string{`airlock.yaml:2: policy.user_arn_template: "a_user" is not an ARN (arn:partition:service:region:account:resource)`},
		},
		{
			name:       "no TLS statement, warned",
			yaml:       "policy:\n  deny_tls_below: none\n",
			want:       []string{`airlock.yaml:2: warning: policy.deny_tls_below: none: pull bucket policies do not deny TLS below 1.2; only for a server whose listener refuses it and that cannot evaluate s3:TlsVersion`},
			wantPolicy: &Policy{Partition: "aws"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := writeTree(t, map[string]string{"airlock.yaml": tt.yaml + "node: test\n", "suppliers/.keep": ""})
			cfg, warns, err := Check(filepath.Join(dir, "airlock.yaml"))
			got := messages(t, err, dir)
			got = append(got, messages(t, warns, dir)...)
			diffLines(t, got, tt.want)
			if tt.wantPolicy != nil && (cfg == nil || cfg.Policy != *tt.wantPolicy) {
				t.Errorf("config %+v, want policy %+v", cfg, *tt.wantPolicy)
			}
		})
	}
}
