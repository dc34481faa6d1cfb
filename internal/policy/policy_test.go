package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/airlock-gw/airlock/internal/config"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// loadTree loads testdata/tree, the configuration the golden files are
// written from.
func loadTree(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load("testdata/tree/airlock.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestGolden compares every supplier's and dataset's documents with
// testdata/golden/<kind>_<name>.json; -update rewrites them.
func TestGolden(t *testing.T) {
	t.Parallel()
	cfg := loadTree(t)
	sets := map[string]func() (*Set, error){}
	for _, s := range cfg.Suppliers.All() {
		sets["supplier_"+s.Name] = func() (*Set, error) { return Supplier(cfg.Policy, s) }
	}
	for _, d := range cfg.Datasets.All() {
		sets["dataset_"+d.Name] = func() (*Set, error) { return Dataset(cfg.Policy, d, cfg.Exports) }
	}
	for _, r := range cfg.Routes.All() {
		sets["route_"+r.Name] = func() (*Set, error) { return Route(cfg.Policy, r) }
	}
	if len(sets) != 9 {
		t.Fatalf("%d subjects in testdata/tree, want 9", len(sets))
	}
	for name, build := range sets {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			set, err := build()
			if err != nil {
				t.Fatal(err)
			}
			got, err := JSON(set)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "golden", name+".json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/policy -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs (go test ./internal/policy -update, then review the diff):\n%s", golden, got)
			}
		})
	}
}

// TestPullBucketPolicy checks the pull bucket policy's meaning, which the
// golden file only freezes: who may read, who may write, and the denies.
func TestPullBucketPolicy(t *testing.T) {
	t.Parallel()
	cfg := loadTree(t)
	d, _ := cfg.Datasets.Lookup("shared_extract")
	set, err := Dataset(cfg.Policy, d, cfg.Exports)
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Documents) != 2 || set.Documents[0].Kind != BucketPolicy || set.Documents[1].Kind != KeyStatements {
		t.Fatalf("documents %+v", set.Documents)
	}
	bp := set.Documents[0]
	if bp.Target != "mojap-shared-extract" || bp.Location != "s3://mojap-shared-extract" {
		t.Errorf("bucket %q at %q", bp.Target, bp.Location)
	}
	grants := map[string][]string{} // principal: actions allowed
	var denies []string
	for _, st := range bp.Policy.Statement {
		if st.Effect == "Deny" {
			if !st.Principal.Everyone || !slices.Equal(st.Action, []string{"s3:*"}) {
				t.Errorf("deny %s is not for everyone and every action", st.Sid)
			}
			for op, kv := range st.Condition {
				for k, v := range kv {
					denies = append(denies, op+" "+k+" "+v)
				}
			}
			continue
		}
		for _, p := range st.Principal.AWS {
			grants[p] = append(grants[p], st.Action...)
		}
	}
	reader, user := "arn:aws:iam::123456789012:role/role-name-1", "arn:aws:iam::111122223333:role/alpha_user_one"
	for _, a := range []string{"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"} {
		if !slices.Contains(grants[reader], a) || !slices.Contains(grants[user], a) {
			t.Errorf("%s not granted to the reader and the user", a)
		}
	}
	for _, a := range []string{"s3:PutObject", "s3:DeleteObject"} {
		if slices.Contains(grants[reader], a) || !slices.Contains(grants[user], a) {
			t.Errorf("%s: reader %v, user %v; want the user only", a, grants[reader], grants[user])
		}
	}
	slices.Sort(denies)
	if want := []string{"Bool aws:SecureTransport false", "NumericLessThan s3:TlsVersion 1.2"}; !slices.Equal(denies, want) {
		t.Errorf("denies %q, want %q", denies, want)
	}

	// Without the TLS version statement, for a server that cannot evaluate it.
	p := cfg.Policy
	p.DenyTLSBelow = ""
	set, err = Dataset(p, d, cfg.Exports)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range set.Documents[0].Policy.Statement {
		if st.Sid == "DenyOldTLS" {
			t.Error("DenyOldTLS written with deny_tls_below: none")
		}
	}
}

// TestNotConfigured: a document needing an unset policy key is refused,
// naming the key, and Check leaves it out.
func TestNotConfigured(t *testing.T) {
	t.Parallel()
	cfg := loadTree(t)
	acme, _ := cfg.Suppliers.Lookup("acme")
	push, _ := cfg.Datasets.Lookup("new_project")
	pull, _ := cfg.Datasets.Lookup("shared_extract")
	tests := []struct {
		name  string
		build func(p config.Policy) error
		unset func(p *config.Policy)
		want  string
	}{
		{"supplier", func(p config.Policy) error { _, err := Supplier(p, acme); return err },
			func(p *config.Policy) { p.IngestionRoleARN = "" }, "supplier acme: policy.ingestion_role_arn is not set in airlock.yaml"},
		{"push dataset", func(p config.Policy) error { _, err := Dataset(p, push, cfg.Exports); return err },
			func(p *config.Policy) { p.MoverRoleARN = "" }, "dataset new_project: policy.mover_role_arn is not set in airlock.yaml"},
		{"pull dataset", func(p config.Policy) error { _, err := Dataset(p, pull, cfg.Exports); return err },
			func(p *config.Policy) { p.UserARNTemplate = "" }, "dataset shared_extract: policy.user_arn_template is not set in airlock.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := cfg.Policy
			tt.unset(&p)
			err := tt.build(p)
			if err == nil || err.Error() != tt.want || !errors.Is(err, ErrNotConfigured) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
	c := *cfg
	c.Policy = config.Policy{Partition: "aws"}
	if errs := Check(&c); len(errs) != 0 {
		t.Errorf("Check without a policy section: %v", errs)
	}
}

// TestCheckRefusesBadDocuments: what the loader would have refused, were
// it written another way, still never reaches a document.
func TestCheckRefusesBadDocuments(t *testing.T) {
	t.Parallel()
	cfg := loadTree(t)
	pull, _ := cfg.Datasets.Lookup("shared_extract")
	badUser := cfg.Policy
	badUser.UserARNTemplate = "alpha_user_{user}"
	push, _ := cfg.Datasets.Lookup("new_project")
	noUsers := *push
	noUsers.Users = nil
	if _, err := Dataset(cfg.Policy, &noUsers, cfg.Exports); err == nil || !strings.Contains(err.Error(), "statement DatasetUsersWriteOnly has an empty principal list") {
		t.Errorf("no users: %v", err)
	}
	if _, err := Dataset(badUser, pull, cfg.Exports); err == nil || !strings.Contains(err.Error(), `statement UsersReadWrite: "alpha_user_one" is not an ARN`) {
		t.Errorf("bad user ARN: %v", err)
	}
	c := *cfg
	c.Policy = badUser
	errs := Check(&c)
	if len(errs) != 4 { // every dataset: their users are principals
		t.Errorf("Check: %v", errs)
	}
}

// TestDocumentsAreAWSShaped: every statement has a Sid AWS accepts and
// the JSON has the policy language's keys only.
func TestDocumentsAreAWSShaped(t *testing.T) {
	t.Parallel()
	cfg := loadTree(t)
	sid := regexp.MustCompile(`^[A-Za-z0-9]+$`)
	var docs []Document
	for _, s := range cfg.Suppliers.All() {
		set, err := Supplier(cfg.Policy, s)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, set.Documents...)
	}
	for _, d := range cfg.Datasets.All() {
		set, err := Dataset(cfg.Policy, d, cfg.Exports)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, set.Documents...)
	}
	for _, d := range docs {
		raw, err := json.Marshal(d.Policy)
		if err != nil {
			t.Fatal(err)
		}
		var back struct {
			Version   string
			Statement []map[string]json.RawMessage
		}
		if err := json.Unmarshal(raw, &back); err != nil || back.Version != "2012-10-17" {
			t.Fatalf("%s: %v %s", d.Target, err, raw)
		}
		for _, st := range back.Statement {
			var id string
			_ = json.Unmarshal(st["Sid"], &id)
			if !sid.MatchString(id) {
				t.Errorf("%s: Sid %q", d.Target, id)
			}
			for k := range st {
				if !slices.Contains([]string{"Sid", "Effect", "Principal", "Action", "Resource", "Condition"}, k) {
					t.Errorf("%s: key %q", d.Target, k)
				}
			}
		}
	}
}
