package release

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/airlock-gw/airlock/internal/names"
)

// tree writes files (relative path → content) under a new directory.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for rel, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestPlan(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		files   map[string]string
		args    []string // relative to the tree; "." is the tree itself
		want    []string // keys
		wantErr string   // in the error, which must name the file
	}{
		{name: "a directory's contents by relative path", files: map[string]string{"a.csv": "1", "sub/b.csv": "22", "sub/deeper/c.csv": ""},
			args: []string{"."}, want: []string{"a.csv", "sub/b.csv", "sub/deeper/c.csv"}},
		{name: "a file by its own name", files: map[string]string{"sub/b.csv": "22"},
			args: []string{"sub/b.csv"}, want: []string{"b.csv"}},
		{name: "files and a directory", files: map[string]string{"x/a.csv": "1", "y.csv": "2"},
			args: []string{"x", "y.csv"}, want: []string{"a.csv", "y.csv"}},
		{name: "two sources for one key", files: map[string]string{"x/a.csv": "1", "a.csv": "2"},
			args: []string{"x", "a.csv"}, wantErr: "would both be released"},
		{name: "a space", files: map[string]string{"ok.csv": "1", "sub/bad name.csv": "2"},
			args: []string{"."}, wantErr: "bad name.csv"},
		{name: "a control character", files: map[string]string{"bad\x01.csv": "2"},
			args: []string{"."}, wantErr: "control character"},
		{name: "a hidden file", files: map[string]string{"sub/.DS_Store": "2"},
			args: []string{"."}, wantErr: ".DS_Store"},
		{name: "a Windows device name", files: map[string]string{"con.csv": "2"},
			args: []string{"."}, wantErr: "con.csv"},
		{name: "the manifest's name", files: map[string]string{ManifestName: "{}"},
			args: []string{"."}, wantErr: "manifest"},
		{name: "the manifest's name deeper is a file like any other", files: map[string]string{"sub/" + ManifestName: "{}"},
			args: []string{"."}, want: []string{"sub/" + ManifestName}},
		{name: "nothing named", args: nil, wantErr: "nothing to release"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := tree(t, tt.files)
			var args []string
			for _, a := range tt.args {
				args = append(args, filepath.Join(dir, a))
			}
			files, err := Plan(args, names.CheckPath)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Plan = %v, %v; want an error with %q", files, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, f := range files {
				keys = append(keys, f.Key)
				if fi, err := os.Stat(f.Local); err != nil || fi.Size() != f.Size {
					t.Errorf("%s: size %d, stat %v", f.Key, f.Size, err)
				}
			}
			if !slices.Equal(keys, tt.want) {
				t.Errorf("keys = %q, want %q", keys, tt.want)
			}
		})
	}
}

func TestPlanRefusesSymlinkInside(t *testing.T) {
	t.Parallel()
	dir := tree(t, map[string]string{"a.csv": "1"})
	if err := os.Symlink(filepath.Join(dir, "a.csv"), filepath.Join(dir, "link.csv")); err != nil {
		t.Skip("no symlinks here:", err)
	}
	if _, err := Plan([]string{dir}, names.CheckPath); err == nil || !strings.Contains(err.Error(), "link.csv") {
		t.Fatalf("Plan = %v, want the symlink named", err)
	}
}
