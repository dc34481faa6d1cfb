package scan

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// chunkBuffers lend scans the buffer they read a file through, with room
// for an INSTREAM chunk's length in front: a scan of a small file should
// not cost a fresh 64 KiB of garbage.
var chunkBuffers = sync.Pool{New: func() any { return new([4 + chunkSize]byte) }}

const (
	// chunkSize is the data in one INSTREAM chunk: large enough that the
	// per-chunk header and syscall cost nothing next to the copy.
	chunkSize = 64 << 10
	// maxReply bounds a reply; clamd's are one short line.
	maxReply = 4 << 10
	// pingTimeout bounds a Ping: clamd answers PONG at once unless it is
	// stuck (or blocked reloading its database), and then it is not ready.
	pingTimeout = 5 * time.Second
	// versionTTL is how long a version clamd reported is reused before it
	// is asked again: clamd reloads newer signatures every SelfCheck
	// interval (600 s by default), and the version names them.
	versionTTL = 10 * time.Minute
	// idleTimeout bounds how long clamd may take to accept the next chunk
	// or to answer, so that a wedged clamd cannot hold a scan whose ctx has
	// no deadline forever. It must exceed clamd's MaxScanTime (120 s by
	// default), which bounds the wait for the verdict after the stream.
	idleTimeout = 10 * time.Minute
	// limitsExceeded starts the name clamd reports, when AlertExceedsMax is
	// set, for a file it did not look at in full (MaxFileSize, MaxScanSize,
	// MaxFiles, MaxRecursion, MaxScanTime).
	limitsExceeded = "Heuristics.Limits.Exceeded."
)

// Clamd scans with a ClamAV daemon: the stream goes over one connection
// per scan with the INSTREAM command (clamd closes the connection after
// each reply). It is safe for concurrent use; clamd's MaxThreads bounds
// how many scans run at once on its side.
//
// A scan takes as long as clamd needs, within ctx: Clamd only gives up on
// a clamd that accepts nothing and answers nothing for idleTimeout (10
// minutes), which is then unavailable.
//
// A stream longer than clamd's StreamMaxLength is TooLarge. So is a file
// clamd did not look at in full when clamd.conf sets AlertExceedsMax
// (recommended: without it clamd answers OK for what it skipped), with
// Signature naming the limit, e.g. "Heuristics.Limits.Exceeded.MaxFileSize".
type Clamd struct {
	addr    string        // as configured, for messages
	network string        // "unix" or "tcp"
	address string        // a socket path or host:port
	idle    time.Duration // idleTimeout, but for tests

	// versionLock is held (filled) while reading or asking for the
	// version; a channel, so that waiting for it heeds ctx.
	versionLock chan struct{}
	version     string // as clamd reported it, e.g. "ClamAV 1.4.6/27800/Tue Oct 21 08:34:02 2025"
	versionAt   time.Time
}

// NewClamd returns a Clamd for addr, "unix:/absolute/path" or
// "tcp://host:port". It checks the syntax only and does not dial, so that
// airlock starts while clamd is still loading its signatures.
func NewClamd(addr string) (*Clamd, error) {
	c := &Clamd{addr: addr, idle: idleTimeout, versionLock: make(chan struct{}, 1)}
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if !filepath.IsAbs(path) {
			return nil, fmt.Errorf("clamd address %q: the socket path must be absolute", addr)
		}
		c.network, c.address = "unix", path
		return c, nil
	}
	if hostport, ok := strings.CutPrefix(addr, "tcp://"); ok {
		host, port, err := net.SplitHostPort(hostport)
		if err != nil || host == "" || strings.ContainsAny(host, "/?#@") {
			return nil, fmt.Errorf("clamd address %q: want tcp://host:port", addr)
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return nil, fmt.Errorf("clamd address %q: the port must be a number from 1 to 65535", addr)
		}
		c.network, c.address = "tcp", hostport
		return c, nil
	}
	return nil, fmt.Errorf("clamd address %q: want unix:/absolute/path or tcp://host:port", addr)
}

// Describe names the daemon, e.g. "clamd at unix:/run/clamav/clamd.ctl".
func (c *Clamd) Describe() string { return "clamd at " + c.addr }

// Ping checks that clamd answers PING. A clamd that has not answered
// within pingTimeout is unavailable.
func (c *Clamd) Ping(ctx context.Context) error {
	pingCtx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	reply, err := c.command(pingCtx, "PING")
	switch {
	case err != nil && ctx.Err() == nil && pingCtx.Err() != nil:
		err = fmt.Errorf("%w: no answer to PING within %v", ErrUnavailable, pingTimeout)
	case err == nil && reply != "PONG":
		err = fmt.Errorf("%w: PING answered %q", ErrUnavailable, reply)
	}
	if err != nil {
		return c.fail(ctx, "clamd ping", err)
	}
	return nil
}

// Scan streams r to clamd and returns its verdict. It reads r to the end
// unless clamd stops it early (StreamMaxLength), and gives up when ctx is
// done. Errors wrap ErrUnavailable when clamd could not be reached, did
// nothing for idleTimeout or answered nonsense; r's error when reading r
// failed; or ctx's error when ctx ended the scan.
func (c *Clamd) Scan(ctx context.Context, r io.Reader) (Result, error) {
	engine := c.engine(ctx)
	res, err := c.scan(ctx, r)
	if err != nil {
		return Result{}, c.fail(ctx, "clamd scan", err)
	}
	res.Engine = engine
	return res, nil
}

func (c *Clamd) scan(ctx context.Context, r io.Reader) (Result, error) {
	conn, stop, err := c.dial(ctx)
	if err != nil {
		return Result{}, err
	}
	defer stop()
	// One buffer holds a chunk's length and data, so that each chunk is
	// one write and nothing is allocated per chunk.
	buf := chunkBuffers.Get().(*[4 + chunkSize]byte)
	defer chunkBuffers.Put(buf)
	if _, err := io.WriteString(conn, "zINSTREAM\x00"); err != nil {
		return Result{}, fmt.Errorf("%w: send INSTREAM: %w", ErrUnavailable, err)
	}
	readErr, writeErr := writeChunks(conn, ctxReader{ctx, r}, buf[:])
	if readErr != nil {
		return Result{}, fmt.Errorf("read input: %w", readErr)
	}
	reply, err := readReply(conn)
	if err != nil {
		if writeErr != nil {
			// clamd closed the connection and said nothing about why.
			return Result{}, fmt.Errorf("%w: send stream: %w (no reply: %v)", ErrUnavailable, writeErr, err)
		}
		return Result{}, err
	}
	// A write error followed by a reply is clamd refusing the rest of the
	// stream (StreamMaxLength): the reply says so, and is the answer. It
	// cannot be clean, as clamd did not get the whole stream.
	res, err := parseReply(reply)
	if err == nil && writeErr != nil && res.Verdict == Clean {
		return Result{}, fmt.Errorf("%w: send stream: %w (yet clamd answered %q)", ErrUnavailable, writeErr, reply)
	}
	return res, err
}

// writeChunks sends r to w as INSTREAM chunks and the empty chunk that
// ends the stream, using buf (4 bytes of length, then the data) for every
// chunk. It stops at the first error reading r or writing w.
func writeChunks(w io.Writer, r io.Reader, buf []byte) (readErr, writeErr error) {
	for {
		n, err := fill(r, buf[4:])
		if n > 0 {
			binary.BigEndian.PutUint32(buf, uint32(n))
			if _, werr := w.Write(buf[:4+n]); werr != nil {
				return nil, werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err, nil
		}
	}
	binary.BigEndian.PutUint32(buf, 0)
	_, err := w.Write(buf[:4])
	return nil, err
}

// ctxReader reads from r until ctx is done: a cancelled scan stops at the
// next chunk, not when the connection's closing catches up with it.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// fill reads from r until p is full, r ends (io.EOF) or fails.
func fill(r io.Reader, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := r.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// command sends one z-command (without its z and NUL) and returns the
// reply.
func (c *Clamd) command(ctx context.Context, cmd string) (string, error) {
	conn, stop, err := c.dial(ctx)
	if err != nil {
		return "", err
	}
	defer stop()
	if _, err := io.WriteString(conn, "z"+cmd+"\x00"); err != nil {
		return "", fmt.Errorf("%w: send %s: %w", ErrUnavailable, cmd, err)
	}
	return readReply(conn)
}

// dial connects to clamd. Each read and write on the connection has
// c.idle to complete, within ctx's deadline; ctx's cancellation closes the
// connection. stop undoes the latter and closes it.
func (c *Clamd) dial(ctx context.Context) (conn io.ReadWriter, stop func(), err error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, c.network, c.address)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	unwatch := context.AfterFunc(ctx, func() { nc.Close() })
	dc := &deadlineConn{Conn: nc, idle: c.idle}
	dc.ctxDeadline, _ = ctx.Deadline()
	return dc, func() {
		unwatch()
		nc.Close()
	}, nil
}

// deadlineConn moves the connection's deadline before each read and
// write: c.idle from now, or ctx's deadline when that is sooner.
type deadlineConn struct {
	net.Conn
	idle        time.Duration
	ctxDeadline time.Time // zero for none
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	if err := c.extend(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	if err := c.extend(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

func (c *deadlineConn) extend() error {
	d := time.Now().Add(c.idle)
	if !c.ctxDeadline.IsZero() && c.ctxDeadline.Before(d) {
		d = c.ctxDeadline
	}
	return c.SetDeadline(d)
}

// readReply reads one NUL-terminated reply. clamd closes the connection
// after it; a reply cut short is an error, never a verdict.
func readReply(conn io.Reader) (string, error) {
	var reply []byte
	var b [512]byte
	for {
		n, err := conn.Read(b[:])
		reply = append(reply, b[:n]...)
		if i := bytes.IndexByte(reply, 0); i >= 0 {
			return string(reply[:i]), nil
		}
		if len(reply) > maxReply {
			return "", fmt.Errorf("%w: no end to the reply in %d bytes", ErrUnavailable, len(reply))
		}
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("%w: connection closed after %d bytes of reply %q", ErrUnavailable, len(reply), reply)
		}
		if err != nil {
			return "", fmt.Errorf("%w: read reply: %w", ErrUnavailable, err)
		}
	}
}

// parseReply turns clamd's reply to INSTREAM into a Result (without
// Engine). Clean is only ever the exact reply "stream: OK"; anything not
// understood is an error wrapping ErrUnavailable.
func parseReply(reply string) (Result, error) {
	const prefix, found = "stream: ", " FOUND"
	switch {
	case reply == prefix+"OK":
		return Result{Verdict: Clean}, nil
	case reply == "INSTREAM size limit exceeded. ERROR":
		return Result{Verdict: TooLarge}, nil
	case len(reply) > len(prefix)+len(found) && strings.HasPrefix(reply, prefix) && strings.HasSuffix(reply, found):
		name := reply[len(prefix) : len(reply)-len(found)]
		if !printable(name) {
			break
		}
		if strings.HasPrefix(name, limitsExceeded) {
			return Result{Verdict: TooLarge, Signature: name}, nil
		}
		return Result{Verdict: Infected, Signature: name}, nil
	case strings.HasSuffix(reply, " ERROR"):
		return Result{}, fmt.Errorf("%w: clamd answered %q", ErrUnavailable, reply)
	}
	return Result{}, fmt.Errorf("%w: unexpected reply %q", ErrUnavailable, reply)
}

// printable reports whether s, a name clamd sent that ends up in the
// ledger and logs, is non-empty printable UTF-8 without surrounding spaces.
func printable(s string) bool {
	if s == "" || !utf8.ValidString(s) || strings.TrimSpace(s) != s {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0
}

// engine names clamd with the version it reported within versionTTL,
// asking for it again when older; scans wait for the one asking. Best
// effort: while the version is unknown (clamd is down, or did not answer
// within pingTimeout), the name is plain "clamd".
func (c *Clamd) engine(ctx context.Context) string {
	select {
	case c.versionLock <- struct{}{}:
	case <-ctx.Done():
		return "clamd"
	}
	defer func() { <-c.versionLock }()
	if time.Since(c.versionAt) > versionTTL {
		ctx, cancel := context.WithTimeout(ctx, pingTimeout)
		reply, err := c.command(ctx, "VERSION")
		cancel()
		if err == nil && strings.HasPrefix(reply, "ClamAV ") && printable(reply) {
			c.version, c.versionAt = reply, time.Now()
		}
	}
	if c.version == "" {
		return "clamd"
	}
	return "clamd " + c.version
}

// fail labels err with the operation and the daemon. When ctx ended the
// operation, the error wraps ctx's error rather than ErrUnavailable: the
// caller gave up, clamd may be fine.
func (c *Clamd) fail(ctx context.Context, op string, err error) error {
	if deadline, ok := ctx.Deadline(); ok && !time.Now().Before(deadline) {
		// The dial or the connection timed out at ctx's deadline: ctx is
		// done as soon as its timer catches up.
		<-ctx.Done()
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%s via %s: %w (%v)", op, c.addr, cerr, err)
	}
	return fmt.Errorf("%s via %s: %w", op, c.addr, err)
}
