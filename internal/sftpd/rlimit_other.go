//go:build !unix

package sftpd

// descriptorLimit is unknown off Unix, where airlock does not serve SFTP.
func descriptorLimit() (int, bool) { return 0, false }
