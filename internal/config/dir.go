package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// treeDirs are the directories of definitions as written in airlock.yaml,
// each "" when it cannot be determined.
type treeDirs struct {
	suppliers, datasets, routes string
	// datasets_dir and routes_dir were written out, not defaulted.
	datasetsSet, routesSet bool
}

// shownPath is dir, as written in the airlock.yaml named file, as a path
// to show in messages: relative ones joined to the directory of file.
func shownPath(file, dir string) string {
	if filepath.IsAbs(dir) {
		return dir
	}
	return filepath.Join(filepath.Dir(file), dir)
}

// dir reads a directory of definitions, def when unset, "" after an error.
func (c *checker) dir(f field, def string) string {
	switch dir, ok := c.str(f); {
	case !ok:
		return ""
	case dir == "":
		return def
	default:
		return dir
	}
}

// openDefs prepares the loading of a directory of definitions that may be
// missing unless mustExist: skip is true when it is missing, absRoot is
// root made absolute (the paths in the files resolve against it).
func openDefs(dir, root string, mustExist bool) (absRoot string, skip bool, errs Errors) {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) && !mustExist {
		return "", true, nil
	}
	absRoot, err := filepath.Abs(root)
	if err != nil {
		return "", false, Errors{{File: dir, Msg: err.Error()}}
	}
	return absRoot, false, nil
}

// defFile is one file of a directory of definitions (suppliers/, datasets/):
// one YAML file per name.
type defFile struct {
	shown string // the directory as given joined with the file name, for messages
	abs   string // absolute path
	stem  string // the file name without its extension, which must equal the name
}

// loadDir hands every definition file in dir, in name order (so messages
// are stable), to parse with a checker of its own, and collects what the
// checkers found. what names the directory in messages ("suppliers").
func loadDir(dir, what string, parse func(c *checker, f defFile, data []byte)) (errs, warns Errors) {
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return Errors{{File: dir, Msg: err.Error()}}, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return Errors{{File: dir, Msg: "cannot read " + what + " directory: " + pathErr(err)}}, nil
	}
	for _, e := range entries {
		name := e.Name()
		if !isConfigFile(name) {
			continue
		}
		f := defFile{
			shown: filepath.Join(dir, name),
			abs:   filepath.Join(absDir, name),
			stem:  strings.TrimSuffix(name, filepath.Ext(name)),
		}
		// ReadFile follows symlinks, as Kubernetes mounts files via ..data.
		data, err := os.ReadFile(f.shown)
		if err != nil {
			errs = append(errs, Error{File: f.shown, Msg: "cannot read: " + pathErr(err)})
			continue
		}
		c := &checker{file: f.shown}
		parse(c, f, data)
		errs = append(errs, c.errs...)
		warns = append(warns, c.warns...)
	}
	return errs, warns
}

// isConfigFile reports whether a directory entry is a definition file. Dot
// files are skipped: editors and Kubernetes keep their own files there.
func isConfigFile(name string) bool {
	ext := filepath.Ext(name)
	return !strings.HasPrefix(name, ".") && (ext == ".yaml" || ext == ".yml")
}

// place is where a value was written.
type place struct {
	file string
	line int
}

// firstSeen remembers where each value (a name, a key) was first defined,
// so that a later definition in another file can be reported as a duplicate.
type firstSeen map[string]place

// seen records v at p and returns false if v is new; otherwise it returns
// where v was first defined.
func (s firstSeen) seen(v string, p place) (first place, dup bool) {
	if first, dup = s[v]; !dup {
		s[v] = p
	}
	return first, dup
}

// named is an immutable set of definitions, by name; share it freely
// between goroutines.
type named[T any] struct {
	byName map[string]*T
	sorted []*T
}

func newNamed[T any](items []*T, name func(*T) string) named[T] {
	s := named[T]{byName: make(map[string]*T, len(items)), sorted: slices.Clone(items)}
	for _, it := range items {
		s.byName[name(it)] = it
	}
	slices.SortFunc(s.sorted, func(a, b *T) int { return strings.Compare(name(a), name(b)) })
	return s
}

// Lookup returns the definition with the given name.
func (s *named[T]) Lookup(name string) (*T, bool) {
	it, ok := s.byName[name]
	return it, ok
}

// All returns the definitions sorted by name. The slice is a copy; the
// definitions themselves must not be modified.
func (s *named[T]) All() []*T {
	return slices.Clone(s.sorted)
}

func (s *named[T]) Len() int {
	return len(s.sorted)
}
