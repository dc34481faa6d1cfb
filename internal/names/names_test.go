package names

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		rule string // "" = accepted; else a substring of the refusal's rule
	}{
		{"plain", "data.csv", ""},
		{"single letter", "a", ""},
		{"every safe class", "Az09._-", ""},
		{"dots inside", "archive.tar.gz", ""},
		{"double dot inside", "x..y", ""},
		{"console look-alike", "console.csv", ""},
		{"COM without digit", "COMX.txt", ""},
		{"LPT with two digits", "LPT10", ""},
		{"trailing dash", "name-", ""},
		{"leading underscore", "_name", ""},
		{"leading digit", "2026-01.csv", ""},
		{"exactly 255 bytes", strings.Repeat("a", 255), ""},

		{"empty", "", "empty name"},
		{"leading dot", ".hidden", "starts with '.'"},
		{"dot", ".", "starts with '.'"},
		{"dot dot", "..", "starts with '.'"},
		{"leading dash", "-rf", "starts with '-'"},
		{"trailing dot", "trailing.", "ends with '.'"},
		{"trailing dots", "report.csv..", "ends with '.'"},
		{"device", "NUL", "a device name on Windows"},
		{"device with extension", "con.csv", "a device name on Windows"},
		{"serial port", "com1.txt", "a device name on Windows"},
		{"printer port", "LPT9", "a device name on Windows"},
		{"space", "a b.csv", "contains a space"},
		{"trailing space", "a.csv ", "contains a space"},
		{"tab", "a\tb", "control character U+0009"},
		{"newline", "a\nb", "control character U+000A"},
		{"carriage return", "a\rb", "control character U+000D"},
		{"NUL", "a\x00b", "control character U+0000"},
		{"DEL", "a\x7fb", "control character U+007F"},
		{"cyrillic a look-alike", "p\u0430yroll.csv", "non-ASCII character U+0430"},
		{"fullwidth letter", "\uff44ata.csv", "non-ASCII character U+FF44"},
		{"fullwidth full stop", "data\uff0ecsv", "non-ASCII character U+FF0E"},
		{"RTL override", "invoice\u202Efdp.exe", "non-ASCII character U+202E"},
		{"zero width space", "a\u200bb", "non-ASCII character U+200B"},
		{"latin-1 letter", "caf\u00e9", "non-ASCII character U+00E9"},
		{"invalid UTF-8", "bad\xff\xfe.csv", "not valid UTF-8"},
		{"lone continuation byte", "\x80", "not valid UTF-8"},
		{"256 bytes", strings.Repeat("a", 256), "longer than 255 bytes"},
		{"256 bytes of invalid UTF-8", strings.Repeat("\xff", 256), "longer than 255 bytes"},
		{"slash", "a/b", `contains '/'`},
		{"backslash", `a\b`, `contains '\\'`},
		{"colon", "c:file", `contains ':'`},
		{"star", "a*b", `contains '*'`},
		{"tilde", "~root", `contains '~'`},
		{"quote", `a"b`, `contains '"'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := Check(tt.in)
			checkRefusal(t, tt.in, err, tt.rule)
		})
	}
}

func TestCheckPath(t *testing.T) {
	t.Parallel()
	deep := func(n int) string { return strings.Repeat("/d", n) }
	long255 := strings.Repeat("a", 255)
	tests := []struct {
		name string
		in   string
		rule string
	}{
		{"root", "/", ""},
		{"empty", "", ""},
		{"one element", "/data.csv", ""},
		{"nested", "/2026/jan/data.csv", ""},
		{"depth 16", deep(16), ""},
		{"depth 17", deep(17), "more than 16 directory levels"},
		{"exactly 1024 bytes", strings.Repeat("/"+long255, 4), ""},
		{"1025 bytes", strings.Repeat("/"+long255, 3) + "/b" + long255, "path longer than 1024 bytes"},
		{"very long", strings.Repeat("/abc", 1000), "path longer than 1024 bytes"},
		{"256-byte element", "/ok/" + strings.Repeat("b", 256), "longer than 255 bytes"},
		{"bad element in the middle", "/ok/bad name/x.csv", "contains a space"},
		{"hidden directory", "/a/.git/config", "starts with '.'"},
		{"dot-dot element", "/a/../b", "starts with '.'"},
		{"dash element", "/a/-b", "starts with '-'"},
		{"double slash", "/a//b", "empty name"},
		{"control char", "/a/b\x01", "control character U+0001"},
		{"look-alike", "/\u0430/b", "non-ASCII character U+0430"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := CheckPath(tt.in)
			checkRefusal(t, tt.in, err, tt.rule)
			var ne *Error
			// Path-level refusals quote a truncated path, not all 1 KiB of it.
			if errors.As(err, &ne) && strings.HasPrefix(ne.Rule, "path longer") && len(ne.Name) > 64+len("…") {
				t.Errorf("Error.Name is %d bytes; long paths must be truncated in messages", len(ne.Name))
			}
		})
	}
}

// checkRefusal asserts that err accepts (rule == "") or refuses in with a
// Error whose rule and message name rule.
func checkRefusal(t *testing.T, in string, err error, rule string) {
	t.Helper()
	if rule == "" {
		if err != nil {
			t.Fatalf("%q: unexpected refusal: %v", in, err)
		}
		return
	}
	if err == nil {
		t.Fatalf("%q: accepted, want refusal %q", in, rule)
	}
	if !errors.Is(err, ErrRefused) {
		t.Errorf("%q: errors.Is(err, ErrRefused) = false for %v", in, err)
	}
	var ne *Error
	if !errors.As(err, &ne) {
		t.Fatalf("%q: error %T is not a *Error", in, err)
	}
	if !strings.Contains(ne.Rule, rule) {
		t.Errorf("%q: rule = %q, want it to contain %q", in, ne.Rule, rule)
	}
	if msg := err.Error(); !strings.Contains(msg, ne.Rule) || !strings.Contains(msg, "allowed:") {
		t.Errorf("%q: message %q does not name the rule %q and the allowed set", in, msg, ne.Rule)
	}
}

func FuzzCheckPath(f *testing.F) {
	for _, s := range []string{
		"/", "", "/data.csv", "/a/b/c", "/.hidden", "/-x", "/a b", "/a\x00b", "/\u0430",
		"/\u202e", "\xff", "/a//b", strings.Repeat("/d", 17), strings.Repeat("a", 300), "../x", "/a/../b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		err := CheckPath(p)
		if err != nil {
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("CheckPath(%q) = %v, not an ErrRefused", p, err)
			}
			var ne *Error
			if !errors.As(err, &ne) || ne.Rule == "" {
				t.Fatalf("CheckPath(%q) = %v: no Error with a rule", p, err)
			}
			return
		}
		if len(p) > MaxPath {
			t.Fatalf("accepted %d-byte path", len(p))
		}
		for i := 0; i < len(p); i++ {
			c := p[i]
			if !isSafeRune(rune(c)) && c != '/' {
				t.Fatalf("accepted %q with byte %q at %d", p, c, i)
			}
		}
		elems := Split(p)
		if len(elems) > maxPathDepth {
			t.Fatalf("accepted %q with %d levels", p, len(elems))
		}
		for _, e := range elems {
			if e == "" || len(e) > MaxName || e[0] == '.' || e[0] == '-' {
				t.Fatalf("accepted %q with element %q", p, e)
			}
			if err := Check(e); err != nil {
				t.Fatalf("CheckPath(%q) accepted, Check(%q) = %v", p, e, err)
			}
		}
	})
}
