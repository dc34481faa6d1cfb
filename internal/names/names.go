// Package names holds the gateway's file-name policy: the names the SFTP
// server accepts, and the release client checks before anything is sent.
package names

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/airlock-gw/airlock/internal/clip"
)

// Limits of the name policy. Long and deep paths are refused early so that
// no store, database column or client has to cope with them.
const (
	MaxName      = 255  // bytes of one path element
	MaxPath      = 1024 // bytes of a whole path
	maxPathDepth = 16
)

// ErrRefused is the sentinel of every name-policy refusal.
var ErrRefused = errors.New("name refused")

// Error says which name broke which rule of the policy.
type Error struct {
	Name string
	Rule string
}

func (e *Error) Error() string {
	return fmt.Sprintf("name %q refused: %s (allowed: letters A-Z a-z, digits, '.', '_', '-'; no leading '.' or '-'; at most %d bytes)",
		e.Name, e.Rule, MaxName)
}

func (e *Error) Unwrap() error { return ErrRefused }

// Check applies the file-name policy to one path element.
func Check(name string) error {
	refuse := func(rule string) error { return &Error{Name: name, Rule: rule} }
	switch {
	case name == "":
		return refuse("empty name")
	case len(name) > MaxName:
		return refuse(fmt.Sprintf("longer than %d bytes", MaxName))
	case !utf8.ValidString(name):
		return refuse("not valid UTF-8")
	case name[0] == '.':
		return refuse("starts with '.'")
	case name[0] == '-':
		return refuse("starts with '-'")
	case name[len(name)-1] == '.':
		// Windows drops a trailing dot, so such a file cannot be opened
		// by its name on a Windows share.
		return refuse("ends with '.'")
	case isWindowsDevice(name):
		return refuse("a device name on Windows")
	}
	for _, r := range name {
		if isSafeRune(r) {
			continue
		}
		switch {
		case r == ' ':
			return refuse("contains a space")
		case r < 0x20 || r == 0x7f:
			return refuse(fmt.Sprintf("contains control character %U", r))
		case r > 0x7f:
			return refuse(fmt.Sprintf("contains non-ASCII character %U", r))
		default:
			return refuse(fmt.Sprintf("contains %q", r))
		}
	}
	return nil
}

// isWindowsDevice reports whether name is one that Windows takes for a
// device whatever its extension: "NUL" and "con.csv" open no file there.
func isWindowsDevice(name string) bool {
	stem, _, _ := strings.Cut(strings.ToUpper(name), ".")
	switch stem {
	case "CON", "PRN", "AUX", "NUL":
		return true
	}
	return len(stem) == 4 && (strings.HasPrefix(stem, "COM") || strings.HasPrefix(stem, "LPT")) &&
		stem[3] >= '0' && stem[3] <= '9'
}

func isSafeRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		r == '.' || r == '_' || r == '-'
}

// CheckPath applies the policy to every element of a clean absolute path
// ("/" itself has no elements and passes).
func CheckPath(p string) error {
	if len(p) > MaxPath {
		return &Error{Name: clip.String(p, clip.Name), Rule: fmt.Sprintf("path longer than %d bytes", MaxPath)}
	}
	elems := Split(p)
	if len(elems) > maxPathDepth {
		return &Error{Name: clip.String(p, clip.Name), Rule: fmt.Sprintf("more than %d directory levels", maxPathDepth)}
	}
	for _, e := range elems {
		if err := Check(e); err != nil {
			return err
		}
	}
	return nil
}

// Split returns the elements of a clean absolute path.
func Split(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}
