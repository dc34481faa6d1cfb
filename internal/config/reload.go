package config

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// debounce is how long Watch waits for changes to settle before reloading:
// editors, `git pull` and kubelet all change a directory in several steps.
const debounce = 200 * time.Millisecond

// Reloader keeps the current set of definitions (suppliers, datasets, routes) of
// one directory and swaps it atomically when the files change and still
// load without errors, so a bad edit never locks anyone out.
type Reloader[T any] struct {
	dir, root string
	what      string // the directory's kind, for messages
	load      func(ctx context.Context, dir, root string) (*T, error)
	onReload  func(ctx context.Context, s *T, err error)
	current   atomic.Pointer[T]
	// mu serialises reloads, so that a slow, older read never replaces the
	// result of a newer one.
	mu sync.Mutex
}

// NewReloader returns a Reloader of the supplier files serving initial
// until the first successful reload of dir (relative paths against root,
// as in LoadSuppliers). onReload, if not nil, is called after every reload
// with the set now in effect and the load error, if any; it must not call
// Reload.
func NewReloader(dir, root string, initial *Suppliers, onReload func(ctx context.Context, s *Suppliers, err error)) *Reloader[Suppliers] {
	return newReloader(dir, root, "suppliers", noContext(LoadSuppliers), initial, onReload)
}

// NewDatasetReloader is NewReloader for the dataset files.
func NewDatasetReloader(dir, root string, initial *Datasets, onReload func(ctx context.Context, s *Datasets, err error)) *Reloader[Datasets] {
	return newReloader(dir, root, "datasets", noContext(LoadDatasets), initial, onReload)
}

// NewRouteReloader is NewReloader for the route files; keys are the key
// services airlock.yaml names. check, when set, vets a set that loaded
// before it is taken (the node opens what the routes need there): an
// error keeps the routes in force, as a file's error does.
func NewRouteReloader(dir, root string, keys map[string]string, initial *Routes,
	check func(context.Context, *Routes) error, onReload func(ctx context.Context, s *Routes, err error)) *Reloader[Routes] {
	load := func(ctx context.Context, dir, root string) (*Routes, error) {
		rs, errs := loadRoutes(dir, root, false, keys)
		if err := errs.orNil(); err != nil {
			return nil, err
		}
		if check != nil {
			if err := check(ctx, rs); err != nil {
				return nil, err
			}
		}
		return rs, nil
	}
	return newReloader(dir, root, "routes", load, initial, onReload)
}

// noContext adapts a loader that needs no context.
func noContext[T any](load func(dir, root string) (*T, error)) func(context.Context, string, string) (*T, error) {
	return func(_ context.Context, dir, root string) (*T, error) { return load(dir, root) }
}

func newReloader[T any](dir, root, what string, load func(ctx context.Context, dir, root string) (*T, error), initial *T, onReload func(context.Context, *T, error)) *Reloader[T] {
	r := &Reloader[T]{dir: dir, root: root, what: what, load: load, onReload: onReload}
	r.current.Store(initial)
	return r
}

// Current returns the set in effect.
func (r *Reloader[T]) Current() *T {
	return r.current.Load()
}

// Reload re-reads the files. On success the new set replaces the current
// one; on failure the current set stays and the Errors are returned.
func (r *Reloader[T]) Reload(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, err := r.load(ctx, r.dir, r.root)
	if err == nil {
		r.current.Store(s)
	}
	if r.onReload != nil {
		r.onReload(ctx, r.current.Load(), err)
	}
	return err
}

// Watch reloads whenever a file of the directory changes, until ctx is done. It
// also follows the directory itself being replaced (renamed over, or a
// symlink swapped) and Kubernetes ConfigMap updates (which swap a ..data
// symlink inside the directory). It reloads once at the start, to catch up
// with changes made since the initial load. Reload results go to onReload;
// Watch only returns an error if it cannot start watching.
func (r *Reloader[T]) Watch(ctx context.Context) error {
	dir, err := filepath.Abs(r.dir)
	if err != nil {
		return fmt.Errorf("watch %s: %w", r.what, err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", r.what, err)
	}
	defer w.Close()
	// The parent is watched too: that is where events about dir itself
	// arrive, including its creation when it does not exist yet (a
	// missing datasets directory is no datasets, until one appears).
	for _, p := range []string{dir, filepath.Dir(dir)} {
		if err := w.Add(p); err != nil && (p != dir || !errors.Is(err, fs.ErrNotExist)) {
			return fmt.Errorf("watch %s: %w", r.what, err)
		}
	}
	// Catch up with changes made between the initial load and now; later
	// ones arrive as events.
	timer := time.NewTimer(0)
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			switch {
			case ev.Name == dir:
				// dir now names a different directory (or none, until the
				// next event here): move the watch to whatever is there.
				_ = w.Remove(dir)
				_ = w.Add(dir)
			case filepath.Dir(ev.Name) != dir || !triggersReload(filepath.Base(ev.Name)):
				continue
			}
			timer.Reset(debounce)
		case _, ok := <-w.Errors:
			if !ok {
				return nil
			}
			// Events may have been lost (a queue overflow), so reload to be sure.
			timer.Reset(debounce)
		case <-timer.C:
			_ = r.Reload(ctx) // the result goes to onReload
		}
	}
}

// triggersReload reports whether a change to the named directory entry can
// change the set: a definition file, or Kubernetes' ..data symlink.
func triggersReload(name string) bool {
	return isConfigFile(name) || strings.HasPrefix(name, "..")
}
