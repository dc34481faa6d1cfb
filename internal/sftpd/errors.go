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
)

// codedError carries the message of err and the SFTP status code of code.
type codedError struct {
	err  error
	code error
}

func (e *codedError) Error() string   { return e.err.Error() }
func (e *codedError) Unwrap() []error { return []error{e.err, e.code} }

// statusError attaches the SFTP status code that fits err, keeping its text
// as the status message.
func statusError(err error) error {
	if err == nil {
		return nil
	}
	code := sftp.ErrSSHFxFailure
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, storage.ErrNotFound):
		code = sftp.ErrSSHFxNoSuchFile
	case errors.Is(err, ErrEscape), errors.Is(err, ErrReadOnly), errors.Is(err, ErrWriteOnly),
		errors.Is(err, ErrProcessing), errors.Is(err, ErrNameRefused):
		code = sftp.ErrSSHFxPermissionDenied
	case errors.Is(err, ErrUnsupported):
		code = sftp.ErrSSHFxOpUnsupported
	}
	return &codedError{err: err, code: code}
}

// refusal reasons as short labels for metrics and audit events.
func refusalReason(err error) string {
	switch {
	case errors.Is(err, ErrEscape):
		return "escape"
	case errors.Is(err, ErrNameRefused):
		return "name-policy"
	case errors.Is(err, ErrTooLarge):
		return "too-large"
	case errors.Is(err, ErrNotSequential):
		return "not-sequential"
	case errors.Is(err, ErrReadOnly), errors.Is(err, ErrWriteOnly), errors.Is(err, ErrProcessing):
		return "permission"
	case errors.Is(err, ErrUnsupported):
		return "unsupported"
	case errors.Is(err, ErrBusy):
		return "busy"
	case errors.Is(err, ErrNotFound), errors.Is(err, storage.ErrNotFound):
		return "not-found"
	case errors.Is(err, ErrExists), errors.Is(err, ErrNotEmpty), errors.Is(err, ErrIsDir):
		return "conflict"
	}
	return "error"
}

// isPolicyRefusal reports whether a refusal reason is a policy decision worth
// an audit event, rather than an ordinary answer.
func isPolicyRefusal(reason string) bool {
	switch reason {
	case "not-found", "conflict", "error":
		return false
	}
	return true
}

func opError(op, p string, err error) error {
	return fmt.Errorf("%s %s: %w", op, p, err)
}
