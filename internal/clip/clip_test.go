package clip

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		max  int
		want string // prefix of the result
	}{
		{"short stays", "report.csv", Name, "report.csv"},
		{"exactly max stays", strings.Repeat("a", Name), Name, strings.Repeat("a", Name)},
		{"long is cut", strings.Repeat("a", 100), Name, strings.Repeat("a", 25) + "…[100 bytes, sha256:"},
		{"control characters", strings.Repeat("\x01", 250<<10), Text, "\x01\x01"},
		{"multibyte not split", strings.Repeat("é", 200), Name, strings.Repeat("é", 12) + "…[400 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := String(tt.in, tt.max)
			if len(got) > tt.max {
				t.Errorf("String: %d bytes, want at most %d", len(got), tt.max)
			}
			if !strings.HasPrefix(got, tt.want) {
				t.Errorf("String = %q, want prefix %q", got, tt.want)
			}
			if !utf8.ValidString(got) && utf8.ValidString(tt.in) {
				t.Errorf("String = %q: not valid UTF-8", got)
			}
		})
	}
}

func TestStringTellsValuesApart(t *testing.T) {
	t.Parallel()
	a := String(strings.Repeat("x", 2000)+"a", Name)
	b := String(strings.Repeat("x", 2000)+"b", Name)
	if a == b {
		t.Errorf("two long values with one head clip to the same %q", a)
	}
}

// TestAttrBoundsALogLine logs a 250 KiB control-character path, its error
// and message, and checks the line stays within a bound that does not grow
// with the input: three clipped values of 1 KiB, each control character
// escaped to at most six bytes.
func TestAttrBoundsALogLine(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("\x07", 250<<10)
	for _, format := range []string{"json", "text"} {
		var buf bytes.Buffer
		opts := &slog.HandlerOptions{ReplaceAttr: Attr}
		h := slog.Handler(slog.NewJSONHandler(&buf, opts))
		if format == "text" {
			h = slog.NewTextHandler(&buf, opts)
		}
		slog.New(h).Warn("refused "+long, "path", long, "err", errors.New("stat "+long), "n", 3)
		if buf.Len() > 3*6*Text+1024 {
			t.Errorf("%s: a log line of %d bytes for a %d-byte input", format, buf.Len(), len(long))
		}
		if !strings.Contains(buf.String(), "256000 bytes") {
			t.Errorf("%s: the line does not give the clipped length: %.200s", format, buf.String())
		}
	}
}

func FuzzString(f *testing.F) {
	f.Add("report.csv", uint16(0))
	f.Add(strings.Repeat("é", 100), uint16(6))
	f.Fuzz(func(t *testing.T, s string, n uint16) {
		limit := 64 + int(n)%4096
		got := String(s, limit)
		if len(got) > limit {
			t.Fatalf("String(%d bytes, %d) = %d bytes", len(s), limit, len(got))
		}
		if len(s) <= limit && got != s {
			t.Fatalf("a short string changed: %q → %q", s, got)
		}
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Fatalf("valid UTF-8 became invalid: %q", got)
		}
	})
}
