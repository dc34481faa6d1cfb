// Package clip shortens strings that come from outside before airlock
// writes them to its log or audit trail, so that no request can make
// airlock write much more than it received: a 250 KiB path of control
// characters would otherwise be written several times over, each byte
// escaped to four.
//
// A clipped string keeps a readable head, its full length and the start of
// its sha256, which is enough to tell two long values apart and to match a
// logged value against one captured elsewhere.
package clip

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"unicode/utf8"
)

// Limits for the two kinds of string airlock records.
const (
	// Name is for short identifiers a client chooses: user names, request
	// and channel types, subsystem names.
	Name = 64
	// Text is for paths, error messages and free text.
	Text = 1024
)

// String returns s unchanged if it is at most limit bytes long (limit at
// least 64), or else a head of s, cut on a rune boundary, followed by its
// length and hash. The result is never longer than limit bytes.
func String(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	tail := fmt.Sprintf("…[%d bytes, sha256:%s]", len(s), hex.EncodeToString(sum[:8]))
	head := limit - len(tail)
	for head > 0 && !utf8.RuneStart(s[head]) {
		head--
	}
	return s[:max(head, 0)] + tail
}

// Attr is a slog.HandlerOptions.ReplaceAttr that clips every string value
// and error message of a log line, the message included, to Text bytes.
func Attr(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindString:
		if s := a.Value.String(); len(s) > Text {
			a.Value = slog.StringValue(String(s, Text))
		}
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok {
			if s := err.Error(); len(s) > Text {
				a.Value = slog.StringValue(String(s, Text))
			}
		}
	}
	return a
}
