package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Error is one problem in one configuration file. Line is 1-based; it is 0
// only for problems that concern a file or directory as a whole (for
// example one that cannot be read). A Warning is a risky but legal setting:
// it is reported, and does not stop the tree from loading.
type Error struct {
	File    string
	Line    int
	Msg     string
	Warning bool
}

// Error formats e as "file:line: message", or "file:line: warning: message"
// for a warning.
func (e Error) Error() string {
	msg := e.Msg
	if e.Warning {
		msg = "warning: " + msg
	}
	if e.Line == 0 {
		return e.File + ": " + msg
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, msg)
}

// Errors is every problem (or every warning) found in a configuration tree,
// sorted by file and line, so that an operator can fix them all in one pass.
type Errors []Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func (es Errors) sort() {
	slices.SortStableFunc(es, func(a, b Error) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
	})
}

// orNil converts an empty list to a nil error, so that callers never get a
// non-nil error interface holding an empty Errors.
func (es Errors) orNil() error {
	if len(es) == 0 {
		return nil
	}
	es.sort()
	return es
}
