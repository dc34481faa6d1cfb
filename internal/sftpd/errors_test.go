package sftpd

import (
	"errors"
	"fmt"
	"github.com/airlock-gw/airlock/internal/names"
	"io"
	"os"
	"syscall"
	"testing"

	"github.com/pkg/sftp"

	"github.com/airlock-gw/airlock/internal/storage"
)

func TestStatusError(t *testing.T) {
	t.Parallel()
	wrap := func(err error) error { return opError("open", `"/x"`, err) }
	tests := []struct {
		name   string
		err    error
		code   error
		reason string
		policy bool
	}{
		{"not found", ErrNotFound, sftp.ErrSSHFxNoSuchFile, "not-found", false},
		{"store not found", fmt.Errorf("read: %w", storage.ErrNotFound), sftp.ErrSSHFxNoSuchFile, "not-found", false},
		{"escape", ErrEscape, sftp.ErrSSHFxPermissionDenied, "escape", true},
		{"read-only", ErrReadOnly, sftp.ErrSSHFxPermissionDenied, "permission", true},
		{"write-only", ErrWriteOnly, sftp.ErrSSHFxPermissionDenied, "permission", true},
		{"processing", ErrProcessing, sftp.ErrSSHFxPermissionDenied, "permission", true},
		{"failed", ErrFailed, sftp.ErrSSHFxPermissionDenied, "permission", true},
		{"name", &names.Error{Name: "a b", Rule: "contains a space"}, sftp.ErrSSHFxPermissionDenied, "name-policy", true},
		{"unsupported", ErrUnsupported, sftp.ErrSSHFxOpUnsupported, "unsupported", true},
		{"too large", ErrTooLarge, sftp.ErrSSHFxFailure, "too-large", true},
		{"not sequential", ErrNotSequential, sftp.ErrSSHFxFailure, "not-sequential", true},
		{"exists", ErrExists, sftp.ErrSSHFxFailure, "conflict", false},
		{"not empty", ErrNotEmpty, sftp.ErrSSHFxFailure, "conflict", false},
		{"is a directory", ErrIsDir, sftp.ErrSSHFxFailure, "conflict", false},
		{"anything else", errors.New("disk on fire"), sftp.ErrSSHFxFailure, "error", false},
		{"store full", &os.PathError{Op: "write", Path: "/var/lib/airlock/landing/x", Err: syscall.ENOSPC}, sftp.ErrSSHFxFailure, "no-space", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, err := range []error{tt.err, wrap(tt.err)} {
				got := statusError(err)
				if !errors.Is(got, tt.code) {
					t.Errorf("statusError(%v) does not carry %v", err, tt.code)
				}
				if !errors.Is(got, tt.err) {
					t.Errorf("statusError(%v) lost the cause", err)
				}
				// The detail of a failure that is no refusal stays in the log.
				want := err.Error()
				switch tt.reason {
				case internalClass.reason:
					want = internalMessage
				case "no-space":
					want = noSpaceMessage
				}
				if got.Error() != want {
					t.Errorf("message %q, want %q", got.Error(), want)
				}
				if r := refusalReason(err); r != tt.reason {
					t.Errorf("refusalReason(%v) = %q, want %q", err, r, tt.reason)
				}
				if _, _, p := classify(err); p != tt.policy {
					t.Errorf("classify(%v) says policy %v, want %v", err, p, tt.policy)
				}
			}
		})
	}
	if statusError(nil) != nil {
		t.Error("statusError(nil) != nil")
	}
	// An error that happens to wrap io.EOF must not become an EOF status:
	// the client would take a refusal for the end of a file.
	if got := statusError(fmt.Errorf("%w: %w", ErrReadOnly, io.EOF)); errors.Is(got, sftp.ErrSSHFxEOF) {
		t.Error("statusError produced an EOF status")
	}
}
