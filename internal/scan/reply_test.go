package scan

// Tests of the clamd client that need no clamd: address syntax, the reply
// parser, the chunk writer, and peers that misbehave in ways a real clamd
// cannot be made to.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestNewClamd(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr string
		err  string // "" for success
	}{
		{"unix:/run/clamav/clamd.ctl", ""},
		{"tcp://127.0.0.1:3310", ""},
		{"tcp://[::1]:3310", ""},
		{"tcp://clamav.internal:3310", ""},
		{"", `clamd address "": want unix:/absolute/path or tcp://host:port`},
		{"/run/clamav/clamd.ctl", `clamd address "/run/clamav/clamd.ctl": want unix:/absolute/path or tcp://host:port`},
		{"127.0.0.1:3310", `clamd address "127.0.0.1:3310": want unix:/absolute/path or tcp://host:port`},
		{"http://127.0.0.1:3310", `clamd address "http://127.0.0.1:3310": want unix:/absolute/path or tcp://host:port`},
		{"unix:", `clamd address "unix:": the socket path must be absolute`},
		{"unix:run/clamd.ctl", `clamd address "unix:run/clamd.ctl": the socket path must be absolute`},
		{"tcp://127.0.0.1", `clamd address "tcp://127.0.0.1": want tcp://host:port`},
		{"tcp://:3310", `clamd address "tcp://:3310": want tcp://host:port`},
		{"tcp://user@host:3310", `clamd address "tcp://user@host:3310": want tcp://host:port`},
		{"tcp://host:0", `clamd address "tcp://host:0": the port must be a number from 1 to 65535`},
		{"tcp://host:65536", `clamd address "tcp://host:65536": the port must be a number from 1 to 65535`},
		{"tcp://host:3310/", `clamd address "tcp://host:3310/": the port must be a number from 1 to 65535`},
	}
	for _, tt := range tests {
		c, err := NewClamd(tt.addr)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("NewClamd(%q): %v", tt.addr, err)
		case tt.err == "" && c.Describe() != "clamd at "+tt.addr:
			t.Errorf("NewClamd(%q).Describe() = %q", tt.addr, c.Describe())
		case tt.err != "" && (err == nil || err.Error() != tt.err):
			t.Errorf("NewClamd(%q) = %v, %v\nwant error %s", tt.addr, c, err, tt.err)
		}
	}
}

func TestParseReply(t *testing.T) {
	t.Parallel()
	tests := []struct {
		reply string
		want  Result // when no error
		err   bool
	}{
		{"stream: OK", Result{Verdict: Clean}, false},
		{"stream: Eicar-Test-Signature FOUND", Result{Verdict: Infected, Signature: "Eicar-Test-Signature"}, false},
		{"stream: Airlock.Test.EICAR.UNOFFICIAL FOUND", Result{Verdict: Infected, Signature: "Airlock.Test.EICAR.UNOFFICIAL"}, false},
		{"stream: OK FOUND", Result{Verdict: Infected, Signature: "OK"}, false},
		{"stream: Heuristics.Limits.Exceeded.MaxScanSize FOUND", Result{Verdict: TooLarge, Signature: "Heuristics.Limits.Exceeded.MaxScanSize"}, false},
		{"INSTREAM size limit exceeded. ERROR", Result{Verdict: TooLarge}, false},
		{"stream: Can't allocate memory ERROR", Result{}, true},
		{"COMMAND READ TIMED OUT ERROR", Result{}, true},
		{"stream: FOUND", Result{}, true},
		{"stream:  FOUND", Result{}, true},
		{"stream:  Padded FOUND", Result{}, true},
		{"stream: Bad\nName FOUND", Result{}, true},
		{"stream: ok", Result{}, true},
		{"stream: OK ", Result{}, true},
		{" stream: OK", Result{}, true},
		{"stream: OKAY", Result{}, true},
		{"1: stream: OK", Result{}, true},
		{"PONG", Result{}, true},
		{"", Result{}, true},
	}
	for _, tt := range tests {
		got, err := parseReply(tt.reply)
		if tt.err {
			if !errors.Is(err, ErrUnavailable) || got != (Result{}) {
				t.Errorf("parseReply(%q) = %+v, %v; want an error wrapping ErrUnavailable", tt.reply, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseReply(%q) = %+v, %v; want %+v", tt.reply, got, err, tt.want)
		}
	}
}

// FuzzParseReply: the parser never panics; only "stream: OK" is clean;
// every other outcome is a verdict clamd named or an error wrapping
// ErrUnavailable.
func FuzzParseReply(f *testing.F) {
	for _, s := range []string{
		"stream: OK", "stream: Eicar-Test-Signature FOUND", "INSTREAM size limit exceeded. ERROR",
		"stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND", "stream: FOUND", "x ERROR", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, reply string) {
		got, err := parseReply(reply)
		if err != nil {
			if !errors.Is(err, ErrUnavailable) || got != (Result{}) {
				t.Fatalf("parseReply(%q) = %+v, %v", reply, got, err)
			}
			return
		}
		switch got.Verdict {
		case Clean:
			if reply != "stream: OK" {
				t.Fatalf("parseReply(%q) is clean", reply)
			}
		case Infected, TooLarge:
			if got.Signature != "" && (!printable(got.Signature) || reply != "stream: "+got.Signature+" FOUND") {
				t.Fatalf("parseReply(%q) = %+v: signature not from the reply", reply, got)
			}
			if got.Verdict == Infected && got.Signature == "" {
				t.Fatalf("parseReply(%q) = %+v: infected without a signature", reply, got)
			}
		default:
			t.Fatalf("parseReply(%q) = %+v", reply, got)
		}
	})
}

// TestWriteChunks: the stream goes out as length-prefixed chunks of at
// most chunkSize and one empty chunk, whatever the reads it arrives in.
func TestWriteChunks(t *testing.T) {
	t.Parallel()
	for _, size := range []int{0, 1, chunkSize - 1, chunkSize, chunkSize + 1, 3*chunkSize + 5} {
		data := randomBytes(size)
		for _, r := range []io.Reader{bytes.NewReader(data), iotest.HalfReader(bytes.NewReader(data)), iotest.DataErrReader(bytes.NewReader(data))} {
			var out bytes.Buffer
			readErr, writeErr := writeChunks(&out, r, make([]byte, 4+chunkSize))
			if readErr != nil || writeErr != nil {
				t.Fatalf("size %d: %v, %v", size, readErr, writeErr)
			}
			var got []byte
			for {
				if out.Len() < 4 {
					t.Fatalf("size %d: stream ends without the empty chunk", size)
				}
				n := int(binary.BigEndian.Uint32(out.Next(4)))
				if n == 0 {
					break
				}
				if n > chunkSize || n > out.Len() {
					t.Fatalf("size %d: chunk of %d bytes, %d left", size, n, out.Len())
				}
				got = append(got, out.Next(n)...)
			}
			if out.Len() != 0 || !bytes.Equal(got, data) {
				t.Errorf("size %d: sent %d bytes, %d after the end", size, len(got), out.Len())
			}
		}
	}

	broken := errors.New("broken")
	if readErr, writeErr := writeChunks(io.Discard, iotest.ErrReader(broken), make([]byte, 4+chunkSize)); readErr != broken || writeErr != nil {
		t.Errorf("failing reader: %v, %v", readErr, writeErr)
	}
	if readErr, writeErr := writeChunks(failingWriter{broken}, strings.NewReader("x"), make([]byte, 4+chunkSize)); readErr != nil || writeErr != broken {
		t.Errorf("failing writer: %v, %v", readErr, writeErr)
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

// TestWriteChunksAllocates: sending a stream allocates nothing, however
// many chunks it takes. Not parallel: AllocsPerRun refuses to be.
func TestWriteChunksAllocates(t *testing.T) {
	data := randomBytes(10*chunkSize + 7)
	r := bytes.NewReader(data)
	buf := make([]byte, 4+chunkSize)
	allocs := testing.AllocsPerRun(10, func() {
		r.Reset(data)
		if readErr, writeErr := writeChunks(io.Discard, r, buf); readErr != nil || writeErr != nil {
			t.Fatal(readErr, writeErr)
		}
	})
	if allocs != 0 {
		t.Errorf("writeChunks allocates %v times per stream", allocs)
	}
}

// fakeClamd listens on a unix socket and lets serve handle each connection.
func fakeClamd(t *testing.T, serve func(net.Conn)) *Clamd {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "fake.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				serve(conn)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return newClamd(t, "unix:"+sock)
}

// TestClamdMisbehaving: a peer that answers garbage, nothing at all, or a
// verdict before it had the whole stream gets no verdict from Scan.
func TestClamdMisbehaving(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		serve func(net.Conn)
		size  int
		want  string
	}{
		{"garbage", func(c net.Conn) {
			readRequest(c)
			io.WriteString(c, "hello\x00")
		}, 10, `scanner unavailable: unexpected reply "hello"`},
		{"closes without a reply", func(c net.Conn) {
			readRequest(c)
		}, 10, "scanner unavailable: connection closed after 0 bytes of reply"},
		{"reply cut short", func(c net.Conn) {
			readRequest(c)
			io.WriteString(c, "stream: OK")
		}, 200 << 10, `scanner unavailable: connection closed after 10 bytes of reply "stream: OK"`},
		{"endless reply", func(c net.Conn) {
			readRequest(c)
			io.WriteString(c, strings.Repeat("x", 2*maxReply))
		}, 10, "scanner unavailable: no end to the reply"},
		{"OK before the end of the stream", func(c net.Conn) {
			readCommand(c) // and not the stream
			io.WriteString(c, "stream: OK\x00")
		}, 16 << 20, `(yet clamd answered "stream: OK")`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := fakeClamd(t, tt.serve)
			got, err := c.Scan(t.Context(), bytes.NewReader(make([]byte, tt.size)))
			if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), tt.want) || got != (Result{}) {
				t.Errorf("Scan = %+v, %v; want an error wrapping ErrUnavailable with %q", got, err, tt.want)
			}
			if got := c.Ping(t.Context()); !errors.Is(got, ErrUnavailable) {
				t.Errorf("Ping: %v, want an error wrapping ErrUnavailable", got)
			}
		})
	}
}

// readRequest reads a command and, for INSTREAM, the stream after it, so
// that the connection closes cleanly after the reply.
func readRequest(c net.Conn) {
	if readCommand(c) != "zINSTREAM" {
		return
	}
	var size [4]byte
	for {
		if _, err := io.ReadFull(c, size[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(size[:])
		if n == 0 {
			return
		}
		if _, err := io.CopyN(io.Discard, c, int64(n)); err != nil {
			return
		}
	}
}

// readCommand reads the command a connection starts with, up to its NUL.
func readCommand(c net.Conn) string {
	var cmd []byte
	b := make([]byte, 1)
	for {
		if _, err := c.Read(b); err != nil || b[0] == 0 {
			return string(cmd)
		}
		cmd = append(cmd, b[0])
	}
}

// TestClamdSilent: a peer that accepts and never answers holds Scan and
// Ping only until ctx's deadline, or, without one, until the idle timeout
// (shortened here), after which it is unavailable.
func TestClamdSilent(t *testing.T) {
	t.Parallel()
	silent := func(c net.Conn) { io.Copy(io.Discard, c) }
	t.Run("ctx deadline", func(t *testing.T) {
		t.Parallel()
		c := fakeClamd(t, silent)
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		got, err := c.Scan(ctx, bytes.NewReader(make([]byte, 100)))
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrUnavailable) || got != (Result{}) {
			t.Errorf("Scan = %+v, %v; want an error wrapping %v", got, err, context.DeadlineExceeded)
		}
		if err := c.Ping(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Ping: %v, want an error wrapping %v", err, context.DeadlineExceeded)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v", d)
		}
	})
	for name, serve := range map[string]func(net.Conn){
		"idle timeout waiting for the reply": silent,
		// The stream is larger than the socket buffers: the writes stall.
		"idle timeout writing": func(net.Conn) { <-t.Context().Done() },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := fakeClamd(t, serve)
			c.idle = 200 * time.Millisecond
			start := time.Now()
			got, err := c.Scan(t.Context(), bytes.NewReader(make([]byte, 16<<20)))
			if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "i/o timeout") || got != (Result{}) {
				t.Errorf("Scan = %+v, %v; want an error wrapping ErrUnavailable after an i/o timeout", got, err)
			}
			if err := c.Ping(t.Context()); !errors.Is(err, ErrUnavailable) {
				t.Errorf("Ping: %v, want an error wrapping ErrUnavailable", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

// TestClamdNobodyListening: an address where nothing listens is
// ErrUnavailable for Scan and Ping.
func TestClamdNobodyListening(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := "tcp://" + ln.Addr().String()
	ln.Close()
	for _, addr := range []string{"unix:" + filepath.Join(t.TempDir(), "none.sock"), closedPort} {
		c := newClamd(t, addr)
		got, err := c.Scan(t.Context(), strings.NewReader("hello"))
		if !errors.Is(err, ErrUnavailable) || got != (Result{}) || !strings.HasPrefix(err.Error(), "clamd scan via "+addr+": ") {
			t.Errorf("Scan via %s = %+v, %v; want an error wrapping ErrUnavailable", addr, got, err)
		}
		if err := c.Ping(t.Context()); !errors.Is(err, ErrUnavailable) || !strings.HasPrefix(err.Error(), "clamd ping via "+addr+": ") {
			t.Errorf("Ping via %s: %v, want an error wrapping ErrUnavailable", addr, err)
		}
	}
}
