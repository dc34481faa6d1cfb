//go:build !unix

package storage

import (
	"errors"
	"os"
)

// Local directory stores need a Unix system: their staged files are
// locked with flock(2) against a concurrent ClearStaging. airlock serves
// from Linux; on other systems the binary runs the commands that use
// object stores only (airlock release, from a desktop).

var (
	errLocked  = errors.New("locked by another")
	errNotUnix = errors.New("local directory stores need a Unix system")
)

func lockFile(*os.File, bool) error { return errNotUnix }

func freeBytes(string) (int64, error) { return 0, errNotUnix }

func fileUID(os.FileInfo) (string, bool) { return "", false }

func linksLikeCopies(string, os.FileInfo) (bool, error) { return false, nil }
