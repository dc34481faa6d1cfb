package main

import (
	"os"
	"strings"
	"testing"
)

// TestPolicyCommand: the command prints the golden documents of the
// policy package's tree, refuses unknown names, and --apply refuses what
// airlock does not own before touching anything.
func TestPolicyCommand(t *testing.T) {
	t.Parallel()
	const tree = "../../internal/policy/testdata/tree/airlock.yaml"
	tests := []struct {
		name       string
		args       []string
		wantGolden string // file under internal/policy/testdata/golden
		wantErr    string
	}{
		{name: "supplier", args: []string{"supplier", "acme"}, wantGolden: "supplier_acme.json"},
		{name: "pull dataset", args: []string{"dataset", "shared_extract"}, wantGolden: "dataset_shared_extract.json"},
		{name: "unknown supplier", args: []string{"supplier", "nobody"}, wantErr: `unknown supplier "nobody"`},
		{name: "unknown dataset", args: []string{"dataset", "nothing"}, wantErr: `unknown dataset "nothing"`},
		{name: "route", args: []string{"route", "cbol_report"}, wantGolden: "route_cbol_report.json"},
		{name: "unknown route", args: []string{"route", "nowhere"}, wantErr: `unknown route "nowhere"`},
		{
			name: "apply what others own", args: []string{"supplier", "acme", "--apply"}, wantGolden: "supplier_acme.json",
			wantErr: "nothing to apply: supplier acme has no bucket policy that airlock owns; its documents are for the owners of those buckets, keys and roles to add to theirs",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stdout, _, err := run(t, append(append([]string{"policy"}, tt.args...), "--config", tree)...)
			if got := errString(err); got != tt.wantErr {
				t.Errorf("error %q, want %q", got, tt.wantErr)
			}
			want := ""
			if tt.wantGolden != "" {
				b, err := os.ReadFile("../../internal/policy/testdata/golden/" + tt.wantGolden)
				if err != nil {
					t.Fatal(err)
				}
				want = string(b)
			}
			if stdout != want {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
			}
		})
	}
}

// TestValidateRefusesBadPolicies: a template whose users are not IAM
// principals fails validation at its line.
func TestValidateRefusesBadPolicies(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{
		"airlock.yaml":          "node: n\npolicy:\n  user_arn_template: \"arn:aws:iam::111122223333:group/{user}\"\n",
		"suppliers/.keep":       "",
		"datasets/out_one.yaml": "name: out_one\npaperwork: https://wiki.example/dpia\nusers: [alpha_user_one]\nbucket: target-bucket\n",
	})
	_, stderr, err := run(t, "validate", "--config", dir+"/airlock.yaml")
	want := `airlock.yaml:3: policy.user_arn_template: "arn:aws:iam::111122223333:group/a_user" must name a role, a user or the account root, without wildcards`
	if err == nil || !strings.Contains(strings.ReplaceAll(stderr, dir+"/", ""), want) {
		t.Errorf("validate: %v\n%s\nwant %s", err, stderr, want)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
