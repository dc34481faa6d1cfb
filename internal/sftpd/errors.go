package sftpd

import (
	"errors"
	"fmt"
	"github.com/airlock-gw/airlock/internal/names"
	"syscall"

	"github.com/pkg/sftp"

	"github.com/airlock-gw/airlock/internal/storage"
)

// Refusals of the virtual file system. Each is mapped to an SFTP status code
// once, in statusError; the message the client sees is the error's text,
// unless it is none of these (see internalMessage).
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

// internalMessage is all a client is told of a failure that is not one of
// the refusals above: the detail (a store's or the database's error, with
// its paths and hosts) is for the operators' log, never for a client.
const internalMessage = "the gateway could not complete the request; the failure is logged"

// noSpaceMessage is what a client is told when a store is full.
const noSpaceMessage = "the gateway has no room for this upload now: try again later"

// codedError carries err, the SFTP status code of code, and the message the
// client sees: err's text unless shown is set.
type codedError struct {
	err   error
	code  error
	shown string
}

func (e *codedError) Error() string {
	if e.shown != "" {
		return e.shown
	}
	return e.err.Error()
}
func (e *codedError) Unwrap() []error { return []error{e.err, e.code} }

// errorClass is a kind of error of the virtual file system: the label used
// in metrics and audit events, the SFTP status code the client gets,
// whether it is a policy refusal worth an audit event rather than an
// ordinary answer (such as "no such file" to a client probing before an
// upload), and the message shown instead of the error's own text, which
// may name the stores' paths and hosts.
type errorClass struct {
	errs   []error
	reason string
	code   error
	policy bool
	shown  string
}

// errorClasses are the known classes; the first an error matches wins.
var errorClasses = []errorClass{
	{[]error{ErrEscape}, "escape", sftp.ErrSSHFxPermissionDenied, true, ""},
	{[]error{names.ErrRefused}, "name-policy", sftp.ErrSSHFxPermissionDenied, true, ""},
	{[]error{ErrTooLarge}, "too-large", sftp.ErrSSHFxFailure, true, ""},
	{[]error{ErrNotSequential}, "not-sequential", sftp.ErrSSHFxFailure, true, ""},
	{[]error{ErrReadOnly, ErrWriteOnly, ErrProcessing, ErrFailed}, "permission", sftp.ErrSSHFxPermissionDenied, true, ""},
	{[]error{ErrOverwriteDenied}, "overwrite-denied", sftp.ErrSSHFxPermissionDenied, true, ""},
	{[]error{ErrUnsupported}, "unsupported", sftp.ErrSSHFxOpUnsupported, true, ""},
	{[]error{ErrBusy}, "busy", sftp.ErrSSHFxFailure, true, ""},
	{[]error{ErrTooManyDirs}, "too-many-directories", sftp.ErrSSHFxFailure, true, ""},
	// Audited once per connection by takeHandle, not per refusal.
	{[]error{ErrTooManyHandles}, "too-many-handles", sftp.ErrSSHFxFailure, false, ""},
	{[]error{ErrNotFound, storage.ErrNotFound}, "not-found", sftp.ErrSSHFxNoSuchFile, false, ""},
	{[]error{ErrExists, ErrNotEmpty, ErrIsDir}, "conflict", sftp.ErrSSHFxFailure, false, ""},
	{[]error{syscall.ENOSPC, syscall.EDQUOT}, "no-space", sftp.ErrSSHFxFailure, false, noSpaceMessage},
}

// internalClass is that of any other error: a failure of the gateway,
// whose detail is for the operators' log; the client is told only
// internalMessage.
var internalClass = errorClass{reason: "error", code: sftp.ErrSSHFxFailure, shown: internalMessage}

func classOf(err error) errorClass {
	for _, c := range errorClasses {
		for _, target := range c.errs {
			if errors.Is(err, target) {
				return c
			}
		}
	}
	return internalClass
}

// classify returns the label, status code and policy of err's class.
func classify(err error) (reason string, code error, policy bool) {
	c := classOf(err)
	return c.reason, c.code, c.policy
}

// statusError attaches the SFTP status code that fits err and the message
// the client may see.
func statusError(err error) error {
	if err == nil {
		return nil
	}
	c := classOf(err)
	return &codedError{err: err, code: c.code, shown: c.shown}
}

// refusalReason is err's short label for metrics and audit events.
func refusalReason(err error) string {
	reason, _, _ := classify(err)
	return reason
}

func opError(op, p string, err error) error {
	return fmt.Errorf("%s %s: %w", op, p, err)
}
