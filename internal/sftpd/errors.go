package sftpd

import (
	"errors"
	"fmt"

	"github.com/pkg/sftp"

	"github.com/airlock-gw/airlock/internal/storage"
)

// Refusals of the virtual file system. Each is mapped to an SFTP status code
// once, in statusError; the message the client sees is the error's text.
var (
	ErrNotFound    = errors.New("no such file or directory")
	ErrReadOnly    = errors.New("read-only")
	ErrWriteOnly   = errors.New("write-only: uploaded files cannot be read back")
	ErrUnsupported = errors.New("not supported")
	ErrExists      = errors.New("already exists")
	ErrNotEmpty    = errors.New("directory not empty")
	ErrIsDir       = errors.New("is a directory")
	ErrProcessing  = errors.New("already received and handed on for processing")
	ErrFailed      = errors.New("that upload failed and was not received: send it again")
	ErrTooManyDirs = errors.New("too many directories")
)

// codedError carries the message of err and the SFTP status code of code.
type codedError struct {
	err  error
	code error
}

func (e *codedError) Error() string   { return e.err.Error() }
func (e *codedError) Unwrap() []error { return []error{e.err, e.code} }

// errorClasses sorts the errors of the virtual file system: the label used
// in metrics and audit events, the SFTP status code the client gets, and
// whether it is a policy refusal worth an audit event rather than an
// ordinary answer (such as "no such file" to a client probing before an
// upload). The first class an error matches wins.
var errorClasses = []struct {
	errs   []error
	reason string
	code   error
	policy bool
}{
	{[]error{ErrEscape}, "escape", sftp.ErrSSHFxPermissionDenied, true},
	{[]error{ErrNameRefused}, "name-policy", sftp.ErrSSHFxPermissionDenied, true},
	{[]error{ErrTooLarge}, "too-large", sftp.ErrSSHFxFailure, true},
	{[]error{ErrNotSequential}, "not-sequential", sftp.ErrSSHFxFailure, true},
	{[]error{ErrReadOnly, ErrWriteOnly, ErrProcessing, ErrFailed}, "permission", sftp.ErrSSHFxPermissionDenied, true},
	{[]error{ErrOverwriteDenied}, "overwrite-denied", sftp.ErrSSHFxPermissionDenied, true},
	{[]error{ErrUnsupported}, "unsupported", sftp.ErrSSHFxOpUnsupported, true},
	{[]error{ErrBusy}, "busy", sftp.ErrSSHFxFailure, true},
	{[]error{ErrTooManyDirs}, "too-many-directories", sftp.ErrSSHFxFailure, true},
	// Audited once per connection by takeHandle, not per refusal.
	{[]error{ErrTooManyHandles}, "too-many-handles", sftp.ErrSSHFxFailure, false},
	{[]error{ErrNotFound, storage.ErrNotFound}, "not-found", sftp.ErrSSHFxNoSuchFile, false},
	{[]error{ErrExists, ErrNotEmpty, ErrIsDir}, "conflict", sftp.ErrSSHFxFailure, false},
}

// classify returns err's class; anything unknown is an internal "error".
func classify(err error) (reason string, code error, policy bool) {
	for _, c := range errorClasses {
		for _, target := range c.errs {
			if errors.Is(err, target) {
				return c.reason, c.code, c.policy
			}
		}
	}
	return "error", sftp.ErrSSHFxFailure, false
}

// statusError attaches the SFTP status code that fits err, keeping its text
// as the status message.
func statusError(err error) error {
	if err == nil {
		return nil
	}
	_, code, _ := classify(err)
	return &codedError{err: err, code: code}
}

// refusalReason is err's short label for metrics and audit events.
func refusalReason(err error) string {
	reason, _, _ := classify(err)
	return reason
}

func opError(op, p string, err error) error {
	return fmt.Errorf("%s %s: %w", op, p, err)
}
