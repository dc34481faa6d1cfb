package storage

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// StagingDir is the directory, at the top of every local store, where
// objects are written until they are complete. Being on the store's own
// filesystem, the commit is a rename, never a copy of a multi-GB file; being
// apart from the objects, a write cut short by a crash never shows up
// beside them, and a staged file's name does not grow with its key's (a
// 255-byte name stays legal). Listings leave it out, and it exists only
// while something is staged: a delivered-to directory keeps none.
const StagingDir = ".airlock-staging"

// staging reports whether a listed key is the staging directory of a local
// store or the kept one of any (see KeptDir), or in them.
func (s *Store) staging(key string) bool {
	return inDir(key, KeptDir) || s.local() && inDir(key, StagingDir)
}

func inDir(key, dir string) bool { return key == dir || strings.HasPrefix(key, dir+"/") }

// localPath maps key to its file in the store at root. Keys here are
// clean relative slash paths; anything else (an absolute path, "..", an
// empty element) is refused rather than mapped somewhere unexpected.
func localPath(root, key string) (string, error) {
	if key == "" || path.Clean(key) != key || path.IsAbs(key) || key == ".." || strings.HasPrefix(key, "../") ||
		inDir(key, StagingDir) || inDir(key, KeptDir) {
		return "", fmt.Errorf("key %q is not a clean relative path", key)
	}
	return filepath.Join(root, filepath.FromSlash(key)), nil
}

// localStaged writes a file in the staging directory and renames it into
// place on commit.
type localStaged struct {
	f       *os.File
	path    string // where f is now: in the staging directory until committed
	final   string
	durable bool // fsync the file and its directory on commit
	aborted bool
}

func createLocal(root, key string, durable bool) (*localStaged, error) {
	final, err := localPath(root, key)
	if err != nil {
		return nil, err
	}
	var f *os.File
	err = inStaging(root, func(staged string) (err error) {
		f, err = os.OpenFile(staged, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
		return err
	})
	if err == nil {
		err = lockStaged(f)
	}
	if err != nil {
		if f != nil {
			f.Close()
			os.Remove(f.Name())
		}
		return nil, err
	}
	return &localStaged{f: f, path: f.Name(), final: final, durable: durable}, nil
}

// lockStaged marks f as written by a live process until it is closed: a
// flock, which the kernel drops when the process dies. Nodes sharing a
// directory (a destination on a shared filesystem) stage in one staging
// directory, and ClearStaging must take from it only what no live writer
// holds. The lock is held until the file is in place. It is shared: a
// hard link staged for a delivery is the landing file's inode, which
// several deliveries may link at once; ClearStaging's exclusive lock
// fails while any holds it.
func lockStaged(f *os.File) error {
	if err := lockFile(f, false); err != nil {
		return fmt.Errorf("lock staged file: %w", err)
	}
	return nil
}

// stagingAttempts bounds how often a file is made again in a staging
// directory that a finished write removed under it.
const stagingAttempts = 100

// inStaging calls create with a fresh name in the staging directory of the
// store at root, creating the directory first. A write that ends removes
// the directory if it is empty (see removeStaging), so that a delivered-to
// directory does not keep one: create failing with os.ErrNotExist is taken
// for that race and tried again, so create must wrap any other missing
// file's error otherwise.
func inStaging(root string, create func(staged string) error) error {
	dir := filepath.Join(root, StagingDir)
	for range stagingAttempts {
		err := os.MkdirAll(dir, 0o750)
		if errors.Is(err, os.ErrExist) {
			continue // made and removed again while MkdirAll looked
		}
		if err != nil {
			return err
		}
		if err := create(filepath.Join(dir, rand.Text())); !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return fmt.Errorf("staging directory %s removed under every attempt to write in it", dir)
}

// removeStaging removes a staging directory if nothing is staged there; a
// write staging there at once makes it again (see inStaging).
func removeStaging(dir string) {
	_ = os.Remove(dir) // fails, as it should, while not empty
}

// errAbortedWrite is what committing an aborted write returns.
var errAbortedWrite = errors.New("the write was aborted")

// commit makes the file visible under its name, durable first if asked.
func (l *localStaged) commit() error {
	if l.aborted {
		return errAbortedWrite
	}
	if l.durable {
		if err := l.f.Sync(); err != nil {
			l.abort()
			return err
		}
	}
	// Renamed while open, so that the file is never in staging without
	// its writer's lock (see lockStaged).
	dir := filepath.Dir(l.final)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		l.abort()
		return err
	}
	if err := os.Rename(l.path, l.final); err != nil {
		l.abort()
		return err
	}
	if err := l.f.Close(); err != nil {
		return err
	}
	removeStaging(filepath.Dir(l.path))
	if !l.durable {
		return nil
	}
	return syncDir(dir)
}

func (l *localStaged) abort() {
	l.aborted = true
	_ = l.f.Close() // the file is being thrown away
	_ = os.Remove(l.path)
	removeStaging(filepath.Dir(l.path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Reads, stats and deletes of local files bypass fileblob too: it looks
// for a sidecar "<name>.attrs" beside each file, a name too long for the
// filesystem when <name> is as long as a name may be.

func (s *Store) statLocal(key string) (Attributes, error) {
	p, err := localPath(s.open, key)
	if err != nil {
		return Attributes{}, fmt.Errorf("stat %s: %w", key, err)
	}
	fi, err := os.Stat(p)
	if err == nil && fi.IsDir() {
		err = os.ErrNotExist
	}
	if err != nil {
		return Attributes{}, fmt.Errorf("stat %s: %w", key, wrapNotFound(err))
	}
	return Attributes{Key: key, Size: fi.Size(), ModTime: fi.ModTime().Unix()}, nil
}

// openLocal opens the file of key for reading, with what it is.
func (s *Store) openLocal(key string) (*os.File, os.FileInfo, error) {
	p, err := localPath(s.open, key)
	if err != nil {
		return nil, nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, wrapNotFound(err)
	}
	fi, err := f.Stat()
	if err == nil && fi.IsDir() {
		err = wrapNotFound(os.ErrNotExist)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

func (s *Store) readLocal(key string, offset, length int64) (io.ReadCloser, error) {
	f, _, err := s.openLocal(key)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if length < 0 {
		return f, nil
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(f, length), f}, nil
}

func (s *Store) deleteLocal(key string) error {
	p, err := localPath(s.open, key)
	if err == nil {
		err = os.Remove(p)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// FreeSpace returns the bytes an unprivileged writer may still add to the
// filesystem of a local store; ok is false for an object store, whose space
// is not bounded so.
func (s *Store) FreeSpace() (free int64, ok bool, err error) {
	if !s.local() {
		return 0, false, nil
	}
	free, err = freeBytes(s.open)
	if err != nil {
		return 0, false, fmt.Errorf("free space of %s: %w", s, err)
	}
	return free, true, nil
}

// ClearStaging removes what writes cut short by a crash left in a local
// store's staging directory: the files no live writer holds locked (see
// lockStaged), so that it may run while other processes (nodes sharing
// the directory) write there.
func (s *Store) ClearStaging() (int, error) {
	if !s.local() {
		return 0, nil
	}
	dir := filepath.Join(s.open, StagingDir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("clear staging of %s: %w", s, err)
	}
	n := 0
	for _, e := range entries {
		removed, err := removeUnlocked(filepath.Join(dir, e.Name()))
		if err != nil {
			return n, fmt.Errorf("clear staging of %s: %w", s, err)
		}
		if removed {
			n++
		}
	}
	removeStaging(dir)
	return n, nil
}

// removeUnlocked removes the staged file p unless a live writer holds it.
func removeUnlocked(p string) (bool, error) {
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil // committed or aborted meanwhile
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	if err := lockFile(f, true); errors.Is(err, errLocked) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	return true, nil
}
