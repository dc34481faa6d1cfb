//go:build unix

package storage

import (
	"errors"
	"math"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// errLocked is lockFile's answer when another holds the lock.
var errLocked = errors.New("locked by another")

// lockFile takes an advisory lock on f without waiting: shared, or
// exclusive; it holds until f is closed.
func lockFile(f *os.File, exclusive bool) error {
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return errLocked
	}
	return err
}

// freeBytes is what an unprivileged writer may still add to the
// filesystem of dir.
func freeBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	bsize := int64(st.Bsize)
	return int64(min(uint64(st.Bavail), uint64(math.MaxInt64/bsize))) * bsize, nil
}

// fileUID is the owner of fi as a decimal uid.
func fileUID(fi os.FileInfo) (string, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", false
	}
	return strconv.FormatUint(uint64(st.Uid), 10), true
}

// linksLikeCopies reports whether file, linked into dir, would look as a
// copy made there would. A copy is created in dir, so it takes the group
// of a set-group-ID directory and the permissions of a default ACL, as an
// operator may have set up for those who read the deliveries; a link keeps
// the source's own.
func linksLikeCopies(dir string, file os.FileInfo) (bool, error) {
	di, err := os.Stat(dir)
	if err != nil {
		return false, err
	}
	dirStat, ok1 := di.Sys().(*syscall.Stat_t)
	fileStat, ok2 := file.Sys().(*syscall.Stat_t)
	if !ok1 || !ok2 {
		return false, nil
	}
	if di.Mode()&os.ModeSetgid != 0 && dirStat.Gid != fileStat.Gid {
		return false, nil
	}
	// Any answer but "here is one" means no default ACL: none set, or a
	// filesystem without ACLs.
	n, err := unix.Getxattr(dir, "system.posix_acl_default", nil)
	return err != nil || n == 0, nil
}
