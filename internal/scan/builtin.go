package scan

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"
)

// eicar is the EICAR anti-virus test file's 68-byte string, split so that
// no scanner flags this source file or the binary as the test file itself.
const eicar = `X5O!P%@AP[4\PZX54(P^)7CC)7}$` + `EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

const (
	// eicarMaxSize is the largest file the EICAR definition covers: the
	// string, then whitespace, 128 bytes in all.
	eicarMaxSize = 128
	// eicarPadding is the whitespace the definition allows after the
	// string: space, tab, LF, CR and Ctrl-Z.
	eicarPadding = " \t\n\r\x1a"
	// eicarSignature is the name ClamAV has long reported for the EICAR
	// test file, so that both scanners' results read alike.
	eicarSignature = "Eicar-Test-Signature"
	// denyListSignature names a deny-list match, followed by the entry's
	// comment when it has one.
	denyListSignature = "sha256-deny-list"
)

// Builtin is the scanner used when no clamd is configured. It is not an
// antivirus: it finds the EICAR test file (so that the quarantine path can
// be tried anywhere) and files whose sha256 is on a deny-list (so that an
// operator can block a known file at once). Every other file is Clean.
// It is safe for concurrent use.
type Builtin struct {
	deny map[[sha256.Size]byte]string // hash → comment
}

// NewBuiltin returns a Builtin with the deny-list in denyListPath, or with
// none when it is "". The file has one sha256 (64 hex digits, either case)
// per line, optionally followed by whitespace and a comment naming the
// file; blank lines and lines starting with # are ignored, so the output
// of sha256sum is a deny-list. A bad line is an error naming file:line.
func NewBuiltin(denyListPath string) (*Builtin, error) {
	if denyListPath == "" {
		return &Builtin{}, nil
	}
	f, err := os.Open(denyListPath)
	if err != nil {
		return nil, fmt.Errorf("builtin scanner: deny list: %w", err)
	}
	defer f.Close()
	deny, err := parseDenyList(denyListPath, f)
	if err != nil {
		return nil, fmt.Errorf("builtin scanner: deny list %w", err)
	}
	return &Builtin{deny: deny}, nil
}

// parseDenyList reads a deny-list; name is its file name for errors, which
// start with "name:line: ". The first comment of a hash listed twice wins.
func parseDenyList(name string, r io.Reader) (map[[sha256.Size]byte]string, error) {
	deny := map[[sha256.Size]byte]string{}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		field, comment := text, ""
		if i := strings.IndexFunc(text, unicode.IsSpace); i >= 0 {
			field, comment = text[:i], strings.TrimSpace(text[i:])
		}
		var sum [sha256.Size]byte
		if len(field) != hex.EncodedLen(sha256.Size) {
			return nil, fmt.Errorf("%s:%d: want a sha256 of 64 hex digits at the start of the line, not %d characters", name, line, len(field))
		}
		if _, err := hex.Decode(sum[:], []byte(field)); err != nil {
			return nil, fmt.Errorf("%s:%d: want a sha256 of 64 hex digits at the start of the line, not %q", name, line, field)
		}
		if _, dup := deny[sum]; !dup {
			deny[sum] = comment
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%s:%d: line too long", name, line+1)
		}
		return nil, fmt.Errorf("%s:%d: %w", name, line+1, err)
	}
	return deny, nil
}

// Describe says what Builtin looks for, and what it is not.
func (b *Builtin) Describe() string {
	if b.deny == nil {
		return "builtin: EICAR test signature only; not an antivirus"
	}
	return fmt.Sprintf("builtin: EICAR test signature and a sha256 deny-list of %d entries; not an antivirus", len(b.deny))
}

// Ping returns nil: Builtin is always there.
func (b *Builtin) Ping(context.Context) error { return nil }

// Scan reads r to the end, in bounded memory, and returns Infected for the
// EICAR test file or a file on the deny-list, else Clean. It stops with
// ctx's error when ctx is done.
func (b *Builtin) Scan(ctx context.Context, r io.Reader) (Result, error) {
	res, _, err := b.ScanDigest(ctx, r)
	return res, err
}

// Digest is the sha256 and length of a whole stream.
type Digest struct {
	SHA256 [sha256.Size]byte
	Size   int64
}

// ScanDigest scans as Scan does and also returns the digest of what it
// read, which it computes for the deny-list anyway: a caller that needs
// one need not hash the stream a second time.
func (b *Builtin) ScanDigest(ctx context.Context, r io.Reader) (Result, Digest, error) {
	h := sha256.New()
	// The first eicarMaxSize+1 bytes tell whether the file is the EICAR
	// test file: past eicarMaxSize it is not.
	var head [eicarMaxSize + 1]byte
	headLen := 0
	chunk := chunkBuffers.Get().(*[4 + chunkSize]byte)
	defer chunkBuffers.Put(chunk)
	buf := chunk[4:]
	var d Digest
	for {
		if err := ctx.Err(); err != nil {
			return Result{}, Digest{}, fmt.Errorf("builtin scan: %w", err)
		}
		n, err := r.Read(buf)
		headLen += copy(head[headLen:], buf[:n])
		h.Write(buf[:n])
		d.Size += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return Result{}, Digest{}, fmt.Errorf("builtin scan: read input: %w", err)
		}
	}
	h.Sum(d.SHA256[:0])
	if isEICAR(head[:headLen]) {
		return Result{Verdict: Infected, Signature: eicarSignature, Engine: "builtin"}, d, nil
	}
	if comment, ok := b.deny[d.SHA256]; ok {
		sig := denyListSignature
		if comment != "" {
			sig += ": " + comment
		}
		return Result{Verdict: Infected, Signature: sig, Engine: "builtin"}, d, nil
	}
	return Result{Verdict: Clean, Engine: "builtin"}, d, nil
}

// isEICAR reports whether the whole file is the EICAR test file: the
// string, then only the whitespace the definition allows, at most
// eicarMaxSize bytes in all.
func isEICAR(file []byte) bool {
	if len(file) > eicarMaxSize || !strings.HasPrefix(string(file), eicar) {
		return false
	}
	return strings.Trim(string(file[len(eicar):]), eicarPadding) == ""
}
