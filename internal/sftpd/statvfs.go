package sftpd

import (
	"github.com/airlock-gw/airlock/internal/names"
	"github.com/pkg/sftp"
)

// statvfs@openssh.com (OpenSSH sftp's df) tells a supplier what it may
// still upload, not what the disk holds: one file of at most the maximum
// file size, less when the landing directory's filesystem has less free.
// Nothing counts as used, so the numbers are consistent (used = size -
// free = 0) and reveal no more than the limits a supplier meets anyway.
// Every area answers alike, the download area with the read-only flag: a
// filesystem of no blocks would make clients divide by zero (OpenSSH's df
// computes the capacity as used / size).
const (
	vfsBlockSize = 4096
	vfsReadOnly  = 0x1 // ST_RDONLY
	vfsNoSUID    = 0x2 // ST_NOSUID
)

// StatVFS answers statvfs@openssh.com.
func (s *session) StatVFS(r *sftp.Request) (*sftp.StatVFS, error) {
	loc, err := s.resolve(r.Filepath)
	if err != nil {
		return nil, s.refuse("statvfs", r.Filepath, err)
	}
	vfs := &sftp.StatVFS{Bsize: vfsBlockSize, Frsize: vfsBlockSize, Flag: vfsNoSUID, Namemax: names.MaxName}
	if loc.area == areaDownload {
		vfs.Flag |= vfsReadOnly
	}
	free := s.srv.maxFileSize
	landing, ok, err := s.srv.landing.FreeSpace()
	if err != nil {
		return nil, s.refuse("statvfs", r.Filepath, err)
	}
	if ok {
		free = min(free, landing)
	}
	blocks := uint64(max(free, 0)) / vfsBlockSize
	vfs.Blocks, vfs.Bfree, vfs.Bavail = blocks, blocks, blocks
	return vfs, nil
}
