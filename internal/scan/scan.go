// Package scan decides whether a received file may be delivered: every file
// is streamed through a Scanner before it leaves the landing store.
//
// There are two scanners. Clamd is the real one: it streams the file to a
// ClamAV daemon over its INSTREAM command, so airlock needs no antivirus
// library of its own and the operator keeps ClamAV's signatures up to date
// as usual. Builtin is not an antivirus: it knows the EICAR test file and a
// deny-list of sha256 hashes, so that a laptop demo and the tests can
// exercise the quarantine path without installing ClamAV.
//
// A scanner answers with a Result or an error, never both. An error means
// the file was not scanned (the daemon is down, the stream broke, the
// context ended) and is never to be taken as clean: the caller scans again
// later. A file too large for the scanner to look at is a Result,
// TooLarge, because scanning it again will not help; it is not clean
// either.
package scan

import (
	"context"
	"errors"
	"io"
)

// Verdict is what a scanner concluded about one stream.
type Verdict string

// The verdicts. Only Clean lets a file through.
const (
	Clean    Verdict = "clean"
	Infected Verdict = "infected"
	TooLarge Verdict = "too-large-to-scan" // larger than the scanner will look at: NOT clean
)

// Result is what a scan found.
type Result struct {
	Verdict Verdict
	// Signature is the matched signature name when Infected, e.g.
	// "Eicar-Test-Signature". When TooLarge it names the limit clamd
	// reported, if it named one (see Clamd).
	Signature string
	// Engine is "clamd" (with the version clamd reported when known, e.g.
	// "clamd ClamAV 1.4.6/27800/Tue Oct 21 08:34:02 2025") or "builtin".
	Engine string
}

// String is short, for the ledger's scan_result column and logs:
// "clean (clamd ClamAV 1.4.6)", "infected: Eicar-Test-Signature (builtin)",
// "too-large-to-scan (clamd)".
func (r Result) String() string {
	s := string(r.Verdict)
	if r.Signature != "" {
		s += ": " + r.Signature
	}
	if r.Engine != "" {
		s += " (" + r.Engine + ")"
	}
	return s
}

// Scanner scans one stream. An error means the stream could not be scanned
// (scanner unreachable, I/O error, ctx done): the caller retries later and
// never treats that as clean. Implementations are safe for concurrent use.
type Scanner interface {
	Scan(ctx context.Context, r io.Reader) (Result, error)
	// Ping reports whether the scanner can take a scan now, for /readyz.
	Ping(ctx context.Context) error
	// Describe is one line for logs and /readyz.
	Describe() string
}

// ErrUnavailable is wrapped (errors.Is) in the errors of a scanner that
// cannot be reached or answers garbage.
var ErrUnavailable = errors.New("scanner unavailable")

var (
	_ Scanner = (*Clamd)(nil)
	_ Scanner = (*Builtin)(nil)
)
