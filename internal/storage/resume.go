package storage

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// A staged write cut off may be suspended instead of aborted: what it
// staged is kept, durably, for Resume to append to later, in this process
// or another. A suspended write is nowhere under its key: like a write in
// progress, it is invisible until committed.

// ErrCannotSuspend reports a store that keeps no suspended writes.
var ErrCannotSuspend = errors.New("this store cannot keep a write to resume it")

// Checkpoint is what a suspended write kept: its first Size bytes, and
// what the store needs to append to them (State, opaque to callers).
type Checkpoint struct {
	Size  int64
	State string
}

// Suspend ends the write, keeping what it staged, and returns where to
// resume it. On error nothing is kept: the write is aborted.
func (st *Staged) Suspend(ctx context.Context) (Checkpoint, error) {
	if st.suspend == nil {
		st.Abort()
		return Checkpoint{}, ErrCannotSuspend
	}
	if st.buf != nil {
		if err := st.buf.Flush(); err != nil {
			st.Abort()
			return Checkpoint{}, fmt.Errorf("suspend: %w", err)
		}
		st.release()
	}
	defer st.cancel()
	cp, err := st.suspend(ctx)
	if err != nil {
		st.Abort()
		return Checkpoint{}, fmt.Errorf("suspend: %w", err)
	}
	return cp, nil
}

// Resume goes on with the write of key, an object of at most maxSize
// bytes, that Suspend kept at cp: the next byte written is byte cp.Size.
func (s *Store) Resume(ctx context.Context, key string, maxSize int64, cp Checkpoint) (*Staged, error) {
	var st *Staged
	var err error
	switch {
	case s.local():
		st, err = s.resumeLocal(ctx, key, cp)
	case s.scheme == "s3":
		st, err = s.resumeS3(ctx, key, maxSize, cp)
	default:
		err = ErrCannotSuspend
	}
	if err != nil {
		return nil, fmt.Errorf("resume %s: %w", key, err)
	}
	return st, nil
}

// DiscardSuspended deletes what a suspended write of key kept at cp. What
// is gone already is no error, so that it may be retried.
func (s *Store) DiscardSuspended(ctx context.Context, key string, cp Checkpoint) error {
	switch {
	case s.scheme == "s3":
		if err := s.discardS3(ctx, key, cp); err != nil {
			return fmt.Errorf("discard suspended %s: %w", key, err)
		}
		return nil
	case !s.local():
		return fmt.Errorf("discard suspended %s: %w", key, ErrCannotSuspend)
	}
	name, err := keptName(cp)
	if err == nil {
		err = os.Remove(filepath.Join(s.open, KeptDir, name))
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("discard suspended %s: %w", key, err)
	}
	removeStaging(filepath.Join(s.open, KeptDir))
	return nil
}

// KeptDir is the directory, at the top of every local store, where the
// files of suspended writes are kept; like StagingDir it is left out of
// listings, and exists only while it holds something. It is apart from
// StagingDir, which a restart clears.
const KeptDir = ".airlock-kept"

// localCheckpoint is a local store's Checkpoint.State.
type localCheckpoint struct {
	File string `json:"file"` // the file's name in KeptDir
}

func keptName(cp Checkpoint) (string, error) {
	var lc localCheckpoint
	if err := json.Unmarshal([]byte(cp.State), &lc); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	if lc.File == "" || filepath.Base(lc.File) != lc.File || lc.File == "." || lc.File == ".." {
		return "", fmt.Errorf("checkpoint: bad file name %q", lc.File)
	}
	return lc.File, nil
}

// keep moves the staged file, synced, into KeptDir.
func (l *localStaged) keep(root string) (Checkpoint, error) {
	if l.aborted {
		return Checkpoint{}, errAbortedWrite
	}
	fi, err := l.f.Stat()
	if err == nil {
		err = l.f.Sync()
	}
	dir := filepath.Join(root, KeptDir)
	name := rand.Text()
	if err == nil {
		err = os.MkdirAll(dir, 0o750)
	}
	staged := l.path
	// Moved while open and locked (see lockStaged), then closed.
	if err == nil {
		if err = os.Rename(staged, filepath.Join(dir, name)); err == nil {
			l.path = filepath.Join(dir, name)
		}
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err == nil {
		err = l.f.Close()
	}
	if err != nil {
		l.abort()
		return Checkpoint{}, err
	}
	removeStaging(filepath.Dir(staged))
	state, _ := json.Marshal(localCheckpoint{File: name}) // cannot fail
	return Checkpoint{Size: fi.Size(), State: string(state)}, nil
}

// resumeLocal moves a kept file back into the staging directory and opens
// it to append, cut to cp.Size: bytes a crash left beyond the checkpoint
// were never counted.
func (s *Store) resumeLocal(ctx context.Context, key string, cp Checkpoint) (*Staged, error) {
	name, err := keptName(cp)
	if err != nil {
		return nil, err
	}
	final, err := localPath(s.open, key)
	if err != nil {
		return nil, err
	}
	kept := filepath.Join(s.open, KeptDir, name)
	// Opened and locked before it moves into staging (see lockStaged).
	f, err := os.OpenFile(kept, os.O_WRONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("the kept bytes are gone: %w", ErrNotFound)
	}
	if err == nil {
		err = lockStaged(f)
	}
	var path string
	if err == nil {
		err = inStaging(s.open, func(staged string) error {
			path = staged
			return os.Rename(kept, staged)
		})
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		return nil, err
	}
	removeStaging(filepath.Join(s.open, KeptDir))
	if fi, err := f.Stat(); err != nil || fi.Size() < cp.Size {
		err = cmp.Or(err, fmt.Errorf("the kept file has %d bytes, fewer than the %d of its checkpoint", fi.Size(), cp.Size))
		return nil, errors.Join(err, f.Close(), os.Remove(path))
	}
	if err := f.Truncate(cp.Size); err != nil {
		return nil, errors.Join(err, f.Close(), os.Remove(path))
	}
	if _, err := f.Seek(cp.Size, 0); err != nil {
		return nil, errors.Join(err, f.Close(), os.Remove(path))
	}
	_, cancel := context.WithCancel(ctx)
	return newLocalStaged(&localStaged{f: f, path: path, final: final, durable: false}, s.open, cancel), nil
}
