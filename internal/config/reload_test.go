package config

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// reloads records what onReload was called with.
type reloads struct {
	mu    sync.Mutex
	calls []reloadCall
}

type reloadCall struct {
	s   *Suppliers
	err error
}

func (r *reloads) record(_ context.Context, s *Suppliers, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, reloadCall{s, err})
}

func (r *reloads) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

func (r *reloads) last(t *testing.T) reloadCall {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.calls) == 0 {
		t.Fatal("onReload was not called")
	}
	return r.calls[len(r.calls)-1]
}

// newTestReloader loads the suppliers in files (written to a new
// suppliers directory) and returns a Reloader serving them.
func newTestReloader(t *testing.T, files map[string]string) (*Reloader[Suppliers], *reloads, string) {
	t.Helper()
	root := writeTree(t, files)
	dir := filepath.Join(root, "suppliers")
	initial, err := LoadSuppliers(dir, root)
	if err != nil {
		t.Fatal(err)
	}
	rec := &reloads{}
	return NewReloader(dir, root, initial, rec.record), rec, dir
}

func TestReload(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		change    func(t *testing.T, dir string)
		wantNames []string
		wantErr   bool
	}{
		{
			name:      "new supplier swaps in",
			change:    func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "globex.yaml"), globexYAML) },
			wantNames: []string{"acme", "globex"},
		},
		{
			name:      "removed supplier swaps out",
			change:    func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "acme.yaml")) },
			wantNames: []string{},
		},
		{
			name:      "broken file keeps the old set",
			change:    func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "globex.yaml"), "name: globex\n") },
			wantNames: []string{"acme"},
			wantErr:   true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, rec, dir := newTestReloader(t, map[string]string{"suppliers/acme.yaml": acmeYAML})
			tt.change(t, dir)
			err := r.Reload(t.Context())
			var errs Errors
			if gotErr := errors.As(err, &errs); gotErr != tt.wantErr {
				t.Fatalf("Reload() = %v, want error: %v", err, tt.wantErr)
			}
			if names := supplierNames(r.Current()); !slices.Equal(names, tt.wantNames) {
				t.Errorf("current suppliers %q, want %q", names, tt.wantNames)
			}
			call := rec.last(t)
			if call.s != r.Current() || fmt.Sprint(call.err) != fmt.Sprint(err) {
				t.Errorf("onReload(%p, %v), want the current set %p and %v", call.s, call.err, r.Current(), err)
			}
		})
	}
}

func TestWatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// setup builds the tree under the config root and returns the
		// suppliers directory to watch.
		setup  func(t *testing.T, root string) string
		change func(t *testing.T, root string)
		seen   func(s *Suppliers) bool
	}{
		{
			name: "file renamed into place",
			setup: func(t *testing.T, root string) string {
				writeFile(t, filepath.Join(root, "suppliers/acme.yaml"), acmeYAML)
				return filepath.Join(root, "suppliers")
			},
			change: func(t *testing.T, root string) {
				// Editors and config management write a temporary file and rename it.
				tmp := filepath.Join(root, "suppliers/.globex.yaml.tmp")
				writeFile(t, tmp, globexYAML)
				rename(t, tmp, filepath.Join(root, "suppliers/globex.yaml"))
			},
			seen: func(s *Suppliers) bool { return s.Len() == 2 },
		},
		{
			name: "kubernetes configmap update",
			setup: func(t *testing.T, root string) string {
				// kubelet's layout: each file is a symlink into ..data, itself
				// a symlink to a timestamped directory, swapped on update.
				dir := filepath.Join(root, "suppliers")
				writeFile(t, filepath.Join(dir, "..v1/acme.yaml"), acmeYAML)
				symlink(t, "..v1", filepath.Join(dir, "..data"))
				symlink(t, "..data/acme.yaml", filepath.Join(dir, "acme.yaml"))
				return dir
			},
			change: func(t *testing.T, root string) {
				dir := filepath.Join(root, "suppliers")
				writeFile(t, filepath.Join(dir, "..v2/acme.yaml"), edit(acmeYAML, "data@", "ops@"))
				symlink(t, "..v2", filepath.Join(dir, "..data_tmp"))
				rename(t, filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data"))
			},
			seen: func(s *Suppliers) bool {
				acme, ok := s.Lookup("acme")
				return ok && acme.Email == "ops@acme.example"
			},
		},
		{
			name: "directory symlink swapped",
			setup: func(t *testing.T, root string) string {
				writeFile(t, filepath.Join(root, "releases/v1/acme.yaml"), acmeYAML)
				symlink(t, "releases/v1", filepath.Join(root, "suppliers"))
				return filepath.Join(root, "suppliers")
			},
			change: func(t *testing.T, root string) {
				writeFile(t, filepath.Join(root, "releases/v2/acme.yaml"), acmeYAML)
				writeFile(t, filepath.Join(root, "releases/v2/globex.yaml"), globexYAML)
				symlink(t, "releases/v2", filepath.Join(root, "suppliers.tmp"))
				rename(t, filepath.Join(root, "suppliers.tmp"), filepath.Join(root, "suppliers"))
			},
			seen: func(s *Suppliers) bool { return s.Len() == 2 },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			dir := tt.setup(t, root)
			initial, err := LoadSuppliers(dir, root)
			if err != nil {
				t.Fatal(err)
			}
			rec := &reloads{}
			r := NewReloader(dir, root, initial, rec.record)

			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- r.Watch(ctx) }()
			// Watch's first reload follows adding its watches; change the
			// tree only then, so that the change must arrive as an event.
			waitFor(t, "the first reload", func() bool { return rec.count() > 0 })
			tt.change(t, root)
			waitFor(t, "the change", func() bool { return tt.seen(r.Current()) })
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Watch() = %v after cancel, want nil", err)
			}
			if call := rec.last(t); call.err != nil {
				t.Errorf("last reload failed: %v", call.err)
			}
		})
	}
}

// waitFor polls cond until it holds, failing the test after a few seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func supplierNames(s *Suppliers) []string {
	names := []string{}
	for _, sup := range s.All() {
		names = append(names, sup.Name)
	}
	return names
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func rename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

// TestRouteReload: a route file added is taken; a bad one, or a set the
// check refuses, keeps the routes in force, the error naming file and line.
func TestRouteReload(t *testing.T) {
	t.Parallel()
	root := writeTree(t, map[string]string{
		"routes/first.yaml": "name: first\nsource: \"src/\"\ndestination: \"out/\"\n",
	})
	dir := filepath.Join(root, "routes")
	initial, errs := loadRoutes(dir, root, false, nil)
	if errs != nil {
		t.Fatal(errs)
	}
	var refuse error
	var got []*Routes
	r := NewRouteReloader(dir, root, nil, initial,
		func(context.Context, *Routes) error { return refuse },
		func(_ context.Context, rs *Routes, _ error) { got = append(got, rs) })
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("second.yaml", "name: second\nsource: \"src2/\"\ndestination: \"out2/\"\n")
	if err := r.Reload(t.Context()); err != nil || r.Current().Len() != 2 {
		t.Fatalf("Reload with a route added = %v, %d routes; want 2", err, r.Current().Len())
	}
	write("third.yaml", "name: third\nsource: \"src3/\"\nflg: \"x\"\ndestination: \"out3/\"\n")
	err := r.Reload(t.Context())
	if err == nil || !strings.Contains(err.Error(), filepath.Join("routes", "third.yaml")+":3:") || r.Current().Len() != 2 {
		t.Fatalf("Reload with a bad file = %v, %d routes; want third.yaml:3: and the 2 in force", err, r.Current().Len())
	}
	if err := os.Remove(filepath.Join(dir, "third.yaml")); err != nil {
		t.Fatal(err)
	}
	refuse = errors.New("second.yaml: route second: rewrap: no such file")
	if err := os.Remove(filepath.Join(dir, "second.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(t.Context()); !errors.Is(err, refuse) || r.Current().Len() != 2 {
		t.Fatalf("Reload the check refuses = %v, %d routes; want the refusal and the 2 in force", err, r.Current().Len())
	}
	if len(got) != 3 || got[2] != r.Current() {
		t.Errorf("onReload called %d times; want 3, with the set in force", len(got))
	}
}
