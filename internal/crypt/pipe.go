package crypt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
)

// Steps are a route's body transforms; Pipe applies them in the order
// decrypt → compress → encrypt. The zero Steps passes the body through
// (and still hashes it).
type Steps struct {
	Decrypt  bool
	Meta     map[string]string // the object's metadata: its envelope, for Decrypt
	Keys     KeyService        // unwraps the data key, for Decrypt
	Compress string            // gzip, zstd, none or ""
	Encrypt  EncryptSpec       // zero: no encryption
}

// Sum is the sha256 (hex) and size of a stream.
type Sum struct {
	SHA256 string
	Size   int64
}

// Piped is the result of Pipe: a reader of the transformed body.
type Piped struct {
	pr      *io.PipeReader
	done    chan struct{}
	in, out Sum
	err     error
}

// errClosed ends the transform when the reader is closed before the end.
var errClosed = errors.New("crypt: pipe closed")

// copyBuf is the size of the one buffer a Pipe copies through.
const copyBuf = 128 << 10

// Pipe starts transforming src by s in a goroutine and returns a reader
// of the result. Everything that can be checked before the first byte
// (the envelope and its data key, the algorithm, the recipients) is
// checked here, so a refused object is refused before anything is sent.
// Read it to io.EOF, then Sums gives the before and after; Close it in
// any case (it stops the goroutine). ctx cancels the transform.
func Pipe(ctx context.Context, src io.Reader, s Steps) (*Piped, error) {
	if err := CheckCompress(s.Compress); err != nil {
		return nil, err
	}
	if !s.Encrypt.IsZero() {
		if err := s.Encrypt.Validate(); err != nil {
			return nil, err
		}
	}
	inSum := newSummer()
	body := io.TeeReader(ctxReader{ctx, src}, inSum)
	if s.Decrypt {
		var err error
		if body, err = Decrypt(ctx, body, s.Meta, s.Keys); err != nil {
			return nil, err
		}
	}
	pr, pw := io.Pipe()
	p := &Piped{pr: pr, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		outSum := newSummer()
		err := transform(io.MultiWriter(pw, outSum), body, s)
		if err == nil {
			p.in, p.out = inSum.sum(), outSum.sum()
		}
		p.err = err
		_ = pw.CloseWithError(err) // nil: the reader sees io.EOF
	}()
	return p, nil
}

// transform copies body into w through compression and encryption, and
// closes them, compression first, so that each flushes into the next.
// After an error nothing is flushed: the reader gets the error instead.
func transform(w io.Writer, body io.Reader, s Steps) error {
	var ew io.WriteCloser = nopCloser{w}
	if !s.Encrypt.IsZero() {
		var err error
		if ew, err = Encrypt(w, s.Encrypt); err != nil {
			return err
		}
	}
	cw, err := Compress(ew, s.Compress)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(cw, body, make([]byte, copyBuf)); err != nil {
		_ = cw.Close() // releases zstd's encoder; its output goes nowhere useful
		return fmt.Errorf("transform: %w", err)
	}
	if err := cw.Close(); err != nil {
		return fmt.Errorf("transform: compress: %w", err)
	}
	if err := ew.Close(); err != nil {
		return fmt.Errorf("transform: encrypt: %w", err)
	}
	return nil
}

// Read reads the transformed body; a failed transform's error comes
// instead of io.EOF.
func (p *Piped) Read(b []byte) (int, error) { return p.pr.Read(b) }

// Close stops the transform if it is still running and waits for it.
func (p *Piped) Close() error {
	_ = p.pr.CloseWithError(errClosed)
	<-p.done
	return nil
}

// Sums returns the sha256 and size of the source (before) and of the
// result (after). It waits for the transform to end: call it after Read
// returned io.EOF, or after Close (then it returns the error that ended
// the transform early).
func (p *Piped) Sums() (in, out Sum, err error) {
	<-p.done
	if p.err != nil {
		return Sum{}, Sum{}, p.err
	}
	return p.in, p.out, nil
}

// summer hashes and counts what is written to it.
type summer struct {
	h hash.Hash
	n int64
}

func newSummer() *summer { return &summer{h: sha256.New()} }

func (s *summer) Write(b []byte) (int, error) {
	s.h.Write(b)
	s.n += int64(len(b))
	return len(b), nil
}

func (s *summer) sum() Sum { return Sum{SHA256: hex.EncodeToString(s.h.Sum(nil)), Size: s.n} }

// ctxReader ends a read of r once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}
