package config

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// pushYAML and pullYAML are valid dataset files; tests derive broken ones
// with edit. pushYAML lines: 1 name, 2 paperwork, 3 users, 4 bucket;
// pullYAML lines: 1 name, 2 paperwork, 3 users, 4 pull_arns.
const (
	pushYAML = `name: new_project
paperwork: "https://wiki.example/dpia/1"
users: ["alpha_user_one"]
bucket: "s3://target-bucket/prefix?region=eu-west-2"
`
	pullYAML = `name: shared_extract
paperwork: "https://wiki.example/dsa/2"
users: ["alpha_user_one"]
pull_arns: ["arn:aws:iam::123456789012:role/reader"]
`
	kmsARN = "arn:aws:kms:eu-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
)

// TestDatasetRules checks each dataset-file rule. files are written under
// datasets/ next to a minimal airlock.yaml; want lists every error in order.
func TestDatasetRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{name: "valid", files: map[string]string{"new_project.yaml": pushYAML, "shared_extract.yml": pullYAML}},
		{
			name:  "every optional key",
			files: map[string]string{"new_project.yaml": pushYAML + "kms_key: " + kmsARN + "\nkeep_files: false\napproval: 5\n", "shared_extract.yml": pullYAML + "kms_key: " + kmsARN + "\npull_bucket: my-pull\nretention: 30d\nkeep_files: false\n"},
		},
		{
			name:  "other files ignored",
			files: map[string]string{"new_project.yaml": pushYAML, "README.md": "# datasets", ".x.yaml": "broken: ["},
		},
		{
			name:  "unknown key with suggestion",
			files: map[string]string{"new_project.yaml": pushYAML + "keepfiles: true\n"},
			want:  []string{`datasets/new_project.yaml:5: unknown key "keepfiles" (did you mean "keep_files"?)`},
		},
		{
			name:  "duplicate key",
			files: map[string]string{"new_project.yaml": pushYAML + "users: [b_b]\n"},
			want:  []string{`datasets/new_project.yaml:5: duplicate key "users" (first at line 3)`},
		},
		{
			name:  "missing required",
			files: map[string]string{"new_project.yaml": "# x\nname: new_project\n"},
			want: []string{
				`datasets/new_project.yaml:2: missing required key "paperwork"`,
				`datasets/new_project.yaml:2: missing required key "users"`,
				`datasets/new_project.yaml:2: missing bucket (a push dataset) or pull_arns (a pull dataset)`,
			},
		},
		{
			name: "bad names",
			files: map[string]string{
				"new_project.yaml": edit(pushYAML, `users: ["alpha_user_one"]`, `users: ["Alpha", "b-c", "ok_1", "ok_1"]`),
				"New-Project.yaml": edit(pushYAML, "name: new_project", "name: New-Project"),
				"other.yaml":       pushYAML,
			},
			want: []string{
				`datasets/New-Project.yaml:1: name "New-Project" must match ^[a-z][a-z0-9_]{1,62}$ (a lowercase letter, then 1-62 of a-z, 0-9 and _)`,
				`datasets/new_project.yaml:3: users[0]: "Alpha" must match ^[a-z][a-z0-9_]{1,62}$ (lower case and underscores)`,
				`datasets/new_project.yaml:3: users[1]: "b-c" must match ^[a-z][a-z0-9_]{1,62}$ (lower case and underscores)`,
				`datasets/new_project.yaml:3: users[3]: "ok_1" is listed twice`,
				`datasets/other.yaml:1: name "new_project" does not match the file name "other.yaml"`,
			},
		},
		{
			name:  "duplicate name across files",
			files: map[string]string{"new_project.yaml": pushYAML, "new_project.yml": pushYAML},
			want:  []string{`datasets/new_project.yml:1: duplicate dataset name "new_project" (also in datasets/new_project.yaml:1)`},
		},
		{
			name:  "no users",
			files: map[string]string{"new_project.yaml": edit(pushYAML, `users: ["alpha_user_one"]`, "users: []")},
			want:  []string{`datasets/new_project.yaml:3: users must list at least one entry`},
		},
		{
			name: "paperwork not https",
			files: map[string]string{
				"new_project.yaml":    edit(pushYAML, "https://wiki.example/dpia/1", "http://wiki.example/dpia/1"),
				"shared_extract.yaml": edit(pullYAML, `"https://wiki.example/dsa/2"`, "TODO"),
			},
			want: []string{
				`datasets/new_project.yaml:2: paperwork: "http://wiki.example/dpia/1" must be the https:// URL of the DPIA or data-sharing agreement`,
				`datasets/shared_extract.yaml:2: paperwork: "TODO" must be the https:// URL of the DPIA or data-sharing agreement`,
			},
		},
		{
			name:  "both bucket and pull_arns",
			files: map[string]string{"new_project.yaml": pushYAML + `pull_arns: ["arn:aws:iam::123456789012:role/reader"]` + "\n"},
			want:  []string{`datasets/new_project.yaml:5: bucket (line 4) and pull_arns are exclusive: a dataset is either pushed to a bucket or pulled from its own`},
		},
		{
			name: "bad buckets",
			files: map[string]string{
				"aa.yaml": edit(edit(pushYAML, "name: new_project", "name: aa"), `"s3://target-bucket/prefix?region=eu-west-2"`, "Target_Bucket"),
				"bb.yaml": edit(edit(pushYAML, "name: new_project", "name: bb"), `"s3://target-bucket/prefix?region=eu-west-2"`, "ftp://x/y"),
				"cc.yaml": edit(edit(pushYAML, "name: new_project", "name: cc"), `"s3://target-bucket/prefix?region=eu-west-2"`, "[a]"),
			},
			want: []string{
				`datasets/aa.yaml:4: bucket: "Target_Bucket" is neither a bucket name (3-63 of a-z, 0-9, . and -), a store URL nor a path (write ./Target_Bucket for a directory)`,
				`datasets/bb.yaml:4: bucket: "ftp://x/y": unsupported scheme "ftp" (use a path or a file, s3, gs, azblob or mem URL)`,
				`datasets/cc.yaml:4: bucket: expected a string, got a list`,
			},
		},
		{
			name: "bad ARNs",
			files: map[string]string{"shared_extract.yaml": edit(pullYAML,
				`pull_arns: ["arn:aws:iam::123456789012:role/reader"]`,
				`pull_arns: ["role-name-1", "arn:aws:iam::1234:role/x", "arn:aws:s3:::bucket", "arn:aws:iam::123456789012:role/*", "arn:aws:iam::123456789012:root", "arn:aws:iam::123456789012:root"]`+
					"\nkms_key: arn:aws:kms:eu-west-2:111122223333:alias/x")},
			want: []string{
				`datasets/shared_extract.yaml:4: pull_arns[0]: "role-name-1" is not an ARN (arn:partition:service:region:account:resource)`,
				`datasets/shared_extract.yaml:4: pull_arns[1]: "arn:aws:iam::1234:role/x": account "1234" must be 12 digits`,
				`datasets/shared_extract.yaml:4: pull_arns[2]: "arn:aws:s3:::bucket" is not an IAM ARN (arn:aws:iam::<account>:role/<name>)`,
				`datasets/shared_extract.yaml:4: pull_arns[3]: "arn:aws:iam::123456789012:role/*" must name a role, a user or the account root, without wildcards`,
				`datasets/shared_extract.yaml:4: pull_arns[5]: "arn:aws:iam::123456789012:root" is listed twice`,
				`datasets/shared_extract.yaml:5: kms_key: "arn:aws:kms:eu-west-2:111122223333:alias/x" is an alias: policies need the key's own ARN (arn:aws:kms:<region>:<account>:key/<id>)`,
			},
		},
		{
			name: "pull keys on a push dataset, push keys on a pull dataset",
			files: map[string]string{
				"new_project.yaml":    pushYAML + "pull_bucket: b-b-b\nretention: 30d\n",
				"shared_extract.yaml": pullYAML + "keep_files: true\n",
			},
			want: []string{
				`datasets/new_project.yaml:5: pull_bucket applies only to pull datasets (pull_arns), not to one with a bucket`,
				`datasets/new_project.yaml:6: retention applies only to pull datasets (pull_arns), not to one with a bucket`,
				`datasets/shared_extract.yaml:5: keep_files applies only to push datasets (bucket): a pull dataset keeps its files in its own bucket`,
			},
		},
		{
			name: "bad values",
			files: map[string]string{
				"new_project.yaml":    pushYAML + "approval: 6\nkeep_files: yes\n",
				"shared_extract.yaml": pullYAML + "retention: 30 days\npull_bucket: s3://b-b-b/prefix\n",
			},
			want: []string{
				`datasets/new_project.yaml:5: approval must be from 0 to 5, got 6`,
				`datasets/new_project.yaml:6: keep_files: expected true or false, got a string`,
				`datasets/shared_extract.yaml:5: retention: invalid duration "30 days": want a number and a unit, like "30s", "15m", "336h" or "14d"`,
				`datasets/shared_extract.yaml:6: pull_bucket: "s3://b-b-b/prefix": a pull bucket is a whole bucket, without a prefix`,
			},
		},
		{
			name: "shared pull bucket",
			files: map[string]string{
				"aa.yaml": edit(pullYAML, "name: shared_extract", "name: aa") + "pull_bucket: mojap-bb\n",
				"bb.yaml": edit(pullYAML, "name: shared_extract", "name: bb"),
			},
			want: []string{`datasets/bb.yaml:4: pull bucket "mojap-bb" is also the pull bucket of datasets/aa.yaml:5`},
		},
		{
			name:  "default pull bucket too long",
			files: map[string]string{strings.Repeat("a", 60) + ".yaml": edit(pullYAML, "name: shared_extract", "name: "+strings.Repeat("a", 60))},
			want:  []string{`datasets/` + strings.Repeat("a", 60) + `.yaml:4: the default pull bucket "mojap-` + strings.Repeat("a", 60) + `" is not a valid bucket name (at most 63 characters): set pull_bucket`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			files := map[string]string{"airlock.yaml": "node: test\n", "suppliers/.keep": ""}
			for name, content := range tt.files {
				files["datasets/"+name] = content
			}
			dir := writeTree(t, files)
			_, err := Load(filepath.Join(dir, "airlock.yaml"))
			diffLines(t, messages(t, err, dir), tt.want)
		})
	}
}

// TestDatasetValues checks what the loader makes of the values it accepts.
func TestDatasetValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		check      func(d *Dataset) bool
	}{
		{"bare bucket name is S3", edit(pushYAML, `"s3://target-bucket/prefix?region=eu-west-2"`, "target-bucket"),
			func(d *Dataset) bool { return d.Bucket.URL == "s3://target-bucket" && d.Push() }},
		{"path resolves against the root", edit(pushYAML, `"s3://target-bucket/prefix?region=eu-west-2"`, "./out/x"),
			func(d *Dataset) bool {
				return strings.HasSuffix(d.Bucket.URL, "/out/x") && filepath.IsAbs(d.Bucket.URL)
			}},
		{"defaults", pushYAML,
			func(d *Dataset) bool {
				return !d.KeepFiles && d.Approval == 0 && d.Bucket.KMSKey == "" && d.PullBucket == ""
			}},
		{"default pull bucket", pullYAML,
			func(d *Dataset) bool {
				return d.PullBucket == "s3://mojap-shared-extract" && !d.Push() && d.Retention == 0
			}},
		{"pull bucket URL kept", pullYAML + "pull_bucket: s3://pulls?region=us-east-1&endpoint=http://127.0.0.1:7070\n",
			func(d *Dataset) bool {
				return d.PullBucket == "s3://pulls?region=us-east-1&endpoint=http://127.0.0.1:7070"
			}},
		{"pull KMS key", pullYAML + "kms_key: " + kmsARN + "\n",
			func(d *Dataset) bool { return d.Bucket.KMSKey == kmsARN && d.Bucket.URL == "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			name := strings.TrimPrefix(strings.SplitN(tt.yaml, "\n", 2)[0], "name: ")
			root := writeTree(t, map[string]string{"datasets/" + name + ".yaml": tt.yaml})
			ds, err := LoadDatasets(filepath.Join(root, "datasets"), root)
			if err != nil {
				t.Fatal(err)
			}
			d, ok := ds.Lookup(name)
			if !ok || !tt.check(d) {
				t.Errorf("%+v", d)
			}
		})
	}
}

// TestDatasetsDir: the default directory may be missing; one written out
// must exist; exports defaults under state/.
func TestDatasetsDir(t *testing.T) {
	t.Parallel()
	dir := writeTree(t, map[string]string{"airlock.yaml": "node: test\n", "suppliers/.keep": ""})
	cfg, err := Load(filepath.Join(dir, "airlock.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Datasets.Len() != 0 || cfg.Exports != filepath.Join(dir, "state/exports") || cfg.DatasetsDir != filepath.Join(dir, "datasets") {
		t.Errorf("datasets %d, exports %q, dir %q", cfg.Datasets.Len(), cfg.Exports, cfg.DatasetsDir)
	}

	dir = writeTree(t, map[string]string{
		"airlock.yaml":    "node: test\nexports: s3://landing/exports?region=eu-west-2\ndatasets_dir: datasetz\n",
		"suppliers/.keep": "",
	})
	_, err = Load(filepath.Join(dir, "airlock.yaml"))
	diffLines(t, messages(t, err, dir), []string{"datasetz: cannot read datasets directory: no such file or directory"})

	if err := os.Mkdir(filepath.Join(dir, "datasetz"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, err = Load(filepath.Join(dir, "airlock.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Exports != "s3://landing/exports?region=eu-west-2" {
		t.Errorf("exports %q", cfg.Exports)
	}
}

// TestDatasetReload: a good edit replaces the set, a bad one keeps it.
func TestDatasetReload(t *testing.T) {
	t.Parallel()
	root := writeTree(t, map[string]string{"datasets/new_project.yaml": pushYAML})
	dir := filepath.Join(root, "datasets")
	initial, err := LoadDatasets(dir, root)
	if err != nil {
		t.Fatal(err)
	}
	var got []*Datasets
	r := NewDatasetReloader(dir, root, initial, func(_ context.Context, s *Datasets, _ error) { got = append(got, s) })
	ctx := t.Context()

	writeFile(t, filepath.Join(dir, "shared_extract.yaml"), pullYAML)
	if err := r.Reload(ctx); err != nil || r.Current().Len() != 2 {
		t.Fatalf("good reload: %v, %d datasets", err, r.Current().Len())
	}
	good := r.Current()
	writeFile(t, filepath.Join(dir, "new_project.yaml"), pushYAML+"approval: 9\n")
	if err := r.Reload(ctx); err == nil || r.Current() != good {
		t.Fatalf("bad reload: err %v, set replaced: %v", err, r.Current() != good)
	}
	if len(got) != 2 || got[1] != good {
		t.Errorf("onReload saw %v", got)
	}
}

// TestDatasetWatchMissingDir: a datasets directory that does not exist yet
// is watched for; the files written once it appears are loaded.
func TestDatasetWatchMissingDir(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "datasets")
	initial, err := LoadDatasets(dir, root)
	if err != nil || initial.Len() != 0 {
		t.Fatalf("missing directory: %v, %d datasets", err, initial.Len())
	}
	var mu sync.Mutex
	reloads := 0
	r := NewDatasetReloader(dir, root, initial, func(context.Context, *Datasets, error) {
		mu.Lock()
		defer mu.Unlock()
		reloads++
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Watch(ctx) }()
	waitFor(t, "the first reload", func() bool { mu.Lock(); defer mu.Unlock(); return reloads > 0 })
	writeFile(t, filepath.Join(dir, "new_project.yaml"), pushYAML)
	waitFor(t, "the new directory's dataset", func() bool { _, ok := r.Current().Lookup("new_project"); return ok })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Watch() = %v, want nil", err)
	}
}
