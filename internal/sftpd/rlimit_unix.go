//go:build unix

package sftpd

import "syscall"

// descriptorLimit is the process's limit on open files.
func descriptorLimit() (int, bool) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, false
	}
	return int(min(lim.Cur, 1<<30)), true
}
