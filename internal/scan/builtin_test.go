package scan

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"
)

func TestResultString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		r    Result
		want string
	}{
		{Result{Verdict: Clean, Engine: "clamd ClamAV 1.4.6"}, "clean (clamd ClamAV 1.4.6)"},
		{Result{Verdict: Infected, Signature: "Eicar-Test-Signature", Engine: "builtin"}, "infected: Eicar-Test-Signature (builtin)"},
		{Result{Verdict: TooLarge, Engine: "clamd"}, "too-large-to-scan (clamd)"},
		{Result{Verdict: TooLarge, Signature: "Heuristics.Limits.Exceeded.MaxFileSize", Engine: "clamd"}, "too-large-to-scan: Heuristics.Limits.Exceeded.MaxFileSize (clamd)"},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.r, got, tt.want)
		}
	}
}

func TestBuiltinEICAR(t *testing.T) {
	t.Parallel()
	b, err := NewBuiltin("")
	if err != nil {
		t.Fatal(err)
	}
	infected := Result{Verdict: Infected, Signature: "Eicar-Test-Signature", Engine: "builtin"}
	clean := Result{Verdict: Clean, Engine: "builtin"}
	tests := []struct {
		name string
		data string
		want Result
	}{
		{"exact", eicar, infected},
		{"with CRLF", eicar + "\r\n", infected},
		{"with every allowed whitespace", eicar + " \t\n\r\x1a", infected},
		{"padded to 128 bytes", eicar + strings.Repeat(" ", eicarMaxSize-len(eicar)), infected},
		{"padded to 129 bytes", eicar + strings.Repeat(" ", eicarMaxSize-len(eicar)+1), clean},
		{"followed by text", eicar + "x", clean},
		{"followed by a vertical tab", eicar + "\v", clean},
		{"preceded by a byte", " " + eicar, clean},
		{"one character changed", strings.Replace(eicar, "EICAR", "EICAX", 1), clean},
		{"truncated", eicar[:len(eicar)-1], clean},
		{"lower case", strings.ToLower(eicar), clean},
		{"followed by a MiB of spaces", eicar + strings.Repeat(" ", 1<<20), clean},
		{"empty", "", clean},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// One byte per read, too: the test file may arrive in pieces.
			for _, r := range []io.Reader{strings.NewReader(tt.data), iotest.OneByteReader(strings.NewReader(tt.data))} {
				got, err := b.Scan(t.Context(), r)
				if err != nil || got != tt.want {
					t.Errorf("Scan = %+v, %v; want %+v", got, err, tt.want)
				}
			}
		})
	}
}

func TestBuiltinDenyList(t *testing.T) {
	t.Parallel()
	b, err := NewBuiltin("testdata/deny-list.txt")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := b.Describe(), "builtin: EICAR test signature and a sha256 deny-list of 3 entries; not an antivirus"; got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
	blocked, err := os.ReadFile("testdata/blocked.txt")
	if err != nil {
		t.Fatal(err)
	}
	infected := func(sig string) Result { return Result{Verdict: Infected, Signature: sig, Engine: "builtin"} }
	tests := []struct {
		name string
		data []byte
		want Result
	}{
		{"listed with a comment", blocked, infected("sha256-deny-list: blocked.txt fixture")},
		{"listed twice: the first comment", []byte("other"), infected("sha256-deny-list")},
		{"listed in capitals", []byte("third"), infected("sha256-deny-list: Third.File")},
		{"EICAR still", []byte(eicar), infected("Eicar-Test-Signature")},
		{"not listed", append(bytes.Clone(blocked), '\n'), Result{Verdict: Clean, Engine: "builtin"}},
		{"empty", nil, Result{Verdict: Clean, Engine: "builtin"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := b.Scan(t.Context(), bytes.NewReader(tt.data))
			if err != nil || got != tt.want {
				t.Errorf("Scan = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestNewBuiltin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		path string
		want string
	}{
		{"testdata/deny-list-bad.txt", `builtin scanner: deny list testdata/deny-list-bad.txt:4: want a sha256 of 64 hex digits at the start of the line, not "e2d063c115c8f011c2dd29fe861e47ee746cffd38df381bac6d765a708f2633g"`},
		{"testdata/missing.txt", "builtin scanner: deny list: open testdata/missing.txt: no such file or directory"},
	}
	for _, tt := range tests {
		b, err := NewBuiltin(tt.path)
		if err == nil || err.Error() != tt.want {
			t.Errorf("NewBuiltin(%q) = %v, %v\nwant error %s", tt.path, b, err, tt.want)
		}
	}
	b, err := NewBuiltin("")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := b.Describe(), "builtin: EICAR test signature only; not an antivirus"; got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
}

func TestParseDenyList(t *testing.T) {
	t.Parallel()
	sum := strings.Repeat("ab", 32)
	tests := []struct {
		name    string
		in      string
		entries map[string]string // hex → comment
		err     string
	}{
		{"empty", "", map[string]string{}, ""},
		{"comments and blanks", "# a\n\n   \n\t# b\n", map[string]string{}, ""},
		{"sha256sum output", sum + "  dir/file name.bin\n", map[string]string{sum: "dir/file name.bin"}, ""},
		{"CRLF and tab", strings.ToUpper(sum) + "\tname \r\n", map[string]string{sum: "name"}, ""},
		{"no final newline", sum, map[string]string{sum: ""}, ""},
		{"63 digits", "# x\n" + sum[1:] + "\n", nil, "list.txt:2: want a sha256 of 64 hex digits at the start of the line, not 63 characters"},
		{"65 digits", sum + "a\n", nil, "list.txt:1: want a sha256 of 64 hex digits at the start of the line, not 65 characters"},
		{"not hex", "\n\n" + sum[:62] + "zz name\n", nil, `list.txt:3: want a sha256 of 64 hex digits at the start of the line, not "` + sum[:62] + `zz"`},
		{"an md5", "d41d8cd98f00b204e9800998ecf8427e\n", nil, "list.txt:1: want a sha256 of 64 hex digits at the start of the line, not 32 characters"},
		{"line too long", sum + "\n" + sum + " " + strings.Repeat("x", 70000) + "\n", nil, "list.txt:2: line too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseDenyList("list.txt", strings.NewReader(tt.in))
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("parseDenyList: %v\nwant error %s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.entries) {
				t.Errorf("got %d entries, want %d", len(got), len(tt.entries))
			}
			for h, comment := range tt.entries {
				var key [sha256.Size]byte
				hex.Decode(key[:], []byte(h))
				if c, ok := got[key]; !ok || c != comment {
					t.Errorf("entry %s: %q, %v; want %q", h, c, ok, comment)
				}
			}
		})
	}
}

// FuzzParseDenyList: the parser never panics; errors name the file and a
// line of it; and what it accepts, written out again, reads back the same.
func FuzzParseDenyList(f *testing.F) {
	for _, name := range []string{"testdata/deny-list.txt", "testdata/deny-list-bad.txt"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(strings.Repeat("0", 64) + "\x00\n#\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := parseDenyList("list.txt", bytes.NewReader(in))
		if err != nil {
			var line int
			if _, serr := fmt.Sscanf(err.Error(), "list.txt:%d:", &line); serr != nil || line < 1 || line > bytes.Count(in, []byte("\n"))+1 {
				t.Fatalf("error %q does not name a line of the input", err)
			}
			return
		}
		var out strings.Builder
		for h, comment := range got {
			if !bytes.Contains(bytes.ToLower(in), []byte(hex.EncodeToString(h[:]))) {
				t.Fatalf("entry %x is not in the input", h)
			}
			fmt.Fprintf(&out, "%X %s\n", h, comment)
		}
		again, err := parseDenyList("again.txt", strings.NewReader(out.String()))
		if err != nil {
			t.Fatalf("reading back %q: %v", out.String(), err)
		}
		if len(again) != len(got) {
			t.Fatalf("read back %d entries, want %d", len(again), len(got))
		}
		for h, comment := range got {
			if again[h] != comment {
				t.Fatalf("entry %x read back with comment %q, want %q", h, again[h], comment)
			}
		}
	})
}

// TestBuiltinLargeStream: a large clean stream is read to the end and is
// clean; reading it is not bounded by its size (the reader is not held in
// memory).
func TestBuiltinLargeStream(t *testing.T) {
	t.Parallel()
	b, err := NewBuiltin("testdata/deny-list.txt")
	if err != nil {
		t.Fatal(err)
	}
	const size = 256 << 20
	r := &countingReader{r: io.LimitReader(zeros{}, size)}
	got, err := b.Scan(t.Context(), r)
	if err != nil || got != (Result{Verdict: Clean, Engine: "builtin"}) {
		t.Errorf("Scan = %+v, %v; want clean", got, err)
	}
	if r.n != size {
		t.Errorf("Scan read %d bytes, want %d", r.n, size)
	}
}

// TestBuiltinDigest: the digest is the sha256 and length of all that was
// read, whatever the verdict.
func TestBuiltinDigest(t *testing.T) {
	t.Parallel()
	b, err := NewBuiltin("testdata/deny-list.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, content := range []string{"", eicar, "ordinary,csv\n", strings.Repeat("x", 3*chunkSize+7)} {
		res, d, err := b.ScanDigest(t.Context(), strings.NewReader(content))
		if err != nil {
			t.Fatal(err)
		}
		if d.SHA256 != sha256.Sum256([]byte(content)) || d.Size != int64(len(content)) {
			t.Errorf("%d bytes (%s): digest %x of %d bytes, want their sha256", len(content), res.Verdict, d.SHA256, d.Size)
		}
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestBuiltinErrors: a failing reader or a done ctx is an error, never a
// verdict.
func TestBuiltinErrors(t *testing.T) {
	t.Parallel()
	b, err := NewBuiltin("")
	if err != nil {
		t.Fatal(err)
	}
	broken := errors.New("disk on fire")
	got, err := b.Scan(t.Context(), io.MultiReader(strings.NewReader(eicar), iotest.ErrReader(broken)))
	if !errors.Is(err, broken) || got != (Result{}) {
		t.Errorf("Scan of a failing reader = %+v, %v; want an error wrapping %v", got, err, broken)
	}
	ctx, cancel := context.WithCancel(t.Context())
	r := &interruptingReader{r: zeros{}, after: 1 << 20, interrupt: cancel}
	got, err = b.Scan(ctx, r)
	if !errors.Is(err, context.Canceled) || got != (Result{}) {
		t.Errorf("Scan with ctx cancelled = %+v, %v; want an error wrapping %v", got, err, context.Canceled)
	}
	if err := b.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func BenchmarkBuiltinScan(b *testing.B) {
	s, err := NewBuiltin("testdata/deny-list.txt")
	if err != nil {
		b.Fatal(err)
	}
	data := randomBytes(16 << 20)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		got, err := s.Scan(b.Context(), bytes.NewReader(data))
		if err != nil || got.Verdict != Clean {
			b.Fatalf("Scan: %v, %v", got, err)
		}
	}
}
