package https_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	sinkhttps "github.com/airlock-gw/airlock/internal/sink/https"
	"github.com/airlock-gw/airlock/internal/testpeer"
)

func TestPut(t *testing.T) {
	t.Parallel()
	ca := testpeer.NewCA(t, "test")
	rc := newReceiver(t, ca, ca, serverOpts{})
	s := newSink(t, rc.URL, ca, ca)
	tests := []struct {
		rel, path, raw string
	}{
		{"a.csv", "/in/a.csv", "/in/a.csv"},
		{"2026-12-07/part 1.csv", "/in/2026-12-07/part 1.csv", "/in/2026-12-07/part%201.csv"},
		{"odd/a%b#c?d;e.csv", "/in/odd/a%b#c?d;e.csv", "/in/odd/a%25b%23c%3Fd%3Be.csv"},
		{"ünï/çode", "/in/ünï/çode", "/in/%C3%BCn%C3%AF/%C3%A7ode"},
	}
	for _, tt := range tests {
		t.Run(tt.rel, func(t *testing.T) {
			t.Parallel()
			body := []byte("contents of " + tt.rel)
			sum := sha256.Sum256(body)
			h := map[string]string{sinkhttps.HeaderSHA256: hex.EncodeToString(sum[:]), sinkhttps.HeaderBatch: "b-1"}
			if err := s.Put(t.Context(), tt.rel, bytes.NewReader(body), int64(len(body)), h); err != nil {
				t.Fatalf("Put: %v", err)
			}
			got, ok := rc.file(tt.path)
			if !ok || !bytes.Equal(got, body) {
				t.Fatalf("receiver has %q (%v) at %s, want %q", got, ok, tt.path, body)
			}
			rc.mu.Lock()
			raw, hdr := rc.raw[tt.path], rc.headers[tt.path]
			rc.mu.Unlock()
			if raw != tt.raw {
				t.Errorf("request path %s, want %s", raw, tt.raw)
			}
			if hdr.Get("X-Content-Sha256") != h[sinkhttps.HeaderSHA256] || hdr.Get("X-Airlock-Batch") != "b-1" {
				t.Errorf("headers %v, want the sha256 and the batch", hdr)
			}
		})
	}
}

func TestPutEmpty(t *testing.T) {
	t.Parallel()
	ca := testpeer.NewCA(t, "test")
	rc := newReceiver(t, ca, ca, serverOpts{})
	s := newSink(t, rc.URL, ca, ca)
	if err := s.Put(t.Context(), "empty", strings.NewReader(""), 0, nil); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if got, ok := rc.file("/in/empty"); !ok || len(got) != 0 {
		t.Fatalf("receiver has %q (%v), want an empty file", got, ok)
	}
}

// TestPutStatus: 2xx is success; a 4xx other than 408 and 429, and a
// redirect, are permanent; the rest is worth a retry.
func TestPutStatus(t *testing.T) {
	t.Parallel()
	ca := testpeer.NewCA(t, "test")
	tests := []struct {
		status    int
		ok        bool
		permanent bool
	}{
		{http.StatusOK, true, false},
		{http.StatusNoContent, true, false},
		{http.StatusMovedPermanently, false, true},
		{http.StatusTemporaryRedirect, false, true},
		{http.StatusBadRequest, false, true},
		{http.StatusForbidden, false, true},
		{http.StatusNotFound, false, true},
		{http.StatusConflict, false, true},
		{http.StatusRequestEntityTooLarge, false, true},
		{http.StatusRequestTimeout, false, false},
		{http.StatusTooManyRequests, false, false},
		{http.StatusInternalServerError, false, false},
		{http.StatusBadGateway, false, false},
		{http.StatusServiceUnavailable, false, false},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			t.Parallel()
			srv := startTLS(t, ca, ca, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				if tt.status >= 300 && tt.status < 400 {
					w.Header().Set("Location", "/elsewhere?token=s3cr3t")
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, "the reason")
			}), serverOpts{})
			err := newSink(t, srv.URL, ca, ca).Put(t.Context(), "f", strings.NewReader("x"), 1, nil)
			switch {
			case tt.ok && err != nil:
				t.Fatalf("Put: %v", err)
			case !tt.ok && err == nil:
				t.Fatalf("Put succeeded on %d", tt.status)
			case !tt.ok && errors.Is(err, sinkhttps.ErrPermanent) != tt.permanent:
				t.Fatalf("Put: %v; permanent %v, want %v", err, errors.Is(err, sinkhttps.ErrPermanent), tt.permanent)
			case !tt.ok && !strings.Contains(err.Error(), "the reason"):
				t.Fatalf("Put: %v, want the receiver's reason quoted", err)
			case err != nil && strings.Contains(err.Error(), "s3cr3t"):
				t.Fatalf("Put: %v shows the redirect's query", err)
			}
			var se *sinkhttps.StatusError
			if !tt.ok && (!errors.As(err, &se) || se.Code != tt.status) {
				t.Fatalf("Put: %v, want a StatusError with %d", err, tt.status)
			}
		})
	}
}

// TestPutRetryAfter: the wait a receiver asks for reaches the caller.
func TestPutRetryAfter(t *testing.T) {
	t.Parallel()
	ca := testpeer.NewCA(t, "test")
	tests := []struct {
		header   string
		min, max time.Duration
	}{
		{"", 0, 0},
		{"7", 7 * time.Second, 7 * time.Second},
		{time.Now().Add(time.Minute).UTC().Format(http.TimeFormat), 50 * time.Second, time.Minute},
		{"soon", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.header, func(t *testing.T) {
			t.Parallel()
			srv := startTLS(t, ca, ca, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				if tt.header != "" {
					w.Header().Set("Retry-After", tt.header)
				}
				w.WriteHeader(http.StatusServiceUnavailable)
			}), serverOpts{})
			err := newSink(t, srv.URL, ca, ca).Put(t.Context(), "f", strings.NewReader("x"), 1, nil)
			var se *sinkhttps.StatusError
			if !errors.As(err, &se) || errors.Is(err, sinkhttps.ErrPermanent) {
				t.Fatalf("Put: %v, want a retryable StatusError", err)
			}
			if se.RetryAfter < tt.min || se.RetryAfter > tt.max {
				t.Fatalf("RetryAfter %v, want %v to %v", se.RetryAfter, tt.min, tt.max)
			}
		})
	}
}

// TestPutRetry: a 500 is retryable, and the caller's second attempt
// delivers the file whole.
func TestPutRetry(t *testing.T) {
	t.Parallel()
	ca := testpeer.NewCA(t, "test")
	rc := newReceiver(t, ca, ca, serverOpts{})
	rc.answers = []int{http.StatusInternalServerError}
	s := newSink(t, rc.URL, ca, ca)
	body := "retried contents"
	err := s.Put(t.Context(), "r.csv", strings.NewReader(body), int64(len(body)), nil)
	if err == nil || errors.Is(err, sinkhttps.ErrPermanent) || !strings.Contains(err.Error(), "500") {
		t.Fatalf("first Put: %v, want a retryable 500", err)
	}
	if err := s.Put(t.Context(), "r.csv", strings.NewReader(body), int64(len(body)), nil); err != nil {
		t.Fatalf("second Put: %v", err)
	}
	if got, _ := rc.file("/in/r.csv"); string(got) != body {
		t.Fatalf("receiver has %q, want %q", got, body)
	}
}

// TestPutTLSRefusals: a receiver airlock cannot verify, or that refuses
// airlock's certificate, fails permanently, saying why, and gets no file.
func TestPutTLSRefusals(t *testing.T) {
	t.Parallel()
	ours := testpeer.NewCA(t, "ours")
	other := testpeer.NewCA(t, "other")
	tests := []struct {
		name               string
		serverCA, clientCA *testpeer.CA // the receiver's certificate's CA and the CA it requires of clients
		hosts              []string
		noClientCert       bool
		maxVersion         uint16 // of the receiver
		want               string
	}{
		{name: "receiver from another CA", serverCA: other, clientCA: ours, want: "fails verification against tls.ca"},
		{name: "receiver for another host", serverCA: ours, clientCA: ours, hosts: []string{"receiver.invalid"}, want: "fails verification against tls.ca"},
		{name: "client certificate unknown", serverCA: ours, clientCA: other, want: "refused airlock's client certificate"},
		{name: "no client certificate", serverCA: ours, clientCA: ours, noClientCert: true, want: "refused airlock's client certificate"},
		{name: "receiver below TLS 1.2", serverCA: ours, clientCA: ours, maxVersion: tls.VersionTLS11, want: "accepts no TLS version airlock offers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rc := newReceiver(t, tt.serverCA, tt.clientCA, serverOpts{hosts: tt.hosts, maxVersion: tt.maxVersion})
			files := sinkhttps.TLSFiles{CA: ours.CertFile}
			if !tt.noClientCert {
				pair := ours.Client("airlock")
				files.Cert, files.Key = pair.Cert, pair.Key
			}
			s, err := sinkhttps.New(rc.URL+"/in/", files, sinkhttps.Options{})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Put(t.Context(), "f", strings.NewReader("secret"), 6, nil)
			if !errors.Is(err, sinkhttps.ErrPermanent) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Put: %v, want a permanent error with %q", err, tt.want)
			}
			if _, ok := rc.file("/in/f"); ok {
				t.Fatal("the receiver got the file")
			}
		})
	}
}

// TestPutUnreachable: nothing listening is retryable.
func TestPutUnreachable(t *testing.T) {
	t.Parallel()
	ca := testpeer.NewCA(t, "test")
	s := newSink(t, "https://"+testpeer.FreeAddr(t), ca, ca)
	err := s.Put(t.Context(), "f", strings.NewReader("x"), 1, nil)
	var opErr *net.OpError
	if err == nil || errors.Is(err, sinkhttps.ErrPermanent) || !errors.As(err, &opErr) {
		t.Fatalf("Put: %v, want a retryable connection error", err)
	}
}

// TestPutStall: a receiver that stops reading fails the attempt after
// StallTimeout, retryably, instead of holding it forever.
func TestPutStall(t *testing.T) {
	t.Parallel()
	ca := testpeer.NewCA(t, "test")
	release := make(chan struct{})
	srv := startTLS(t, ca, ca, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }), serverOpts{})
	defer close(release)
	pair := ca.Client("airlock")
	s, err := sinkhttps.New(srv.URL+"/in/", sinkhttps.TLSFiles{Cert: pair.Cert, Key: pair.Key, CA: ca.CertFile},
		sinkhttps.Options{StallTimeout: 500 * time.Millisecond, ResponseTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	const size = 64 << 20 // more than socket buffers hold
	start := time.Now()
	err = s.Put(t.Context(), "f", io.LimitReader(zeros{}, size), size, nil)
	if err == nil || errors.Is(err, sinkhttps.ErrPermanent) || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("Put: %v, want a retryable timeout", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("Put took %v to give up", d)
	}
}

// TestPutBodyLength: a body shorter or longer than its size fails, and
// the receiver never acknowledges it.
func TestPutBodyLength(t *testing.T) {
	t.Parallel()
	ca := testpeer.NewCA(t, "test")
	rc := newReceiver(t, ca, ca, serverOpts{})
	s := newSink(t, rc.URL, ca, ca)
	tests := []struct {
		name string
		body string
		size int64
		want string
	}{
		{"short", "12345", 10, "5 bytes short"},
		{"long", "1234567890", 5, "longer than its size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := s.Put(t.Context(), tt.name, strings.NewReader(tt.body), tt.size, nil)
			if !errors.Is(err, sinkhttps.ErrPermanent) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Put: %v, want a permanent error with %q", err, tt.want)
			}
			if got, ok := rc.file("/in/" + tt.name); ok {
				t.Fatalf("the receiver kept %q", got)
			}
		})
	}
}

// TestPutUnsized: a body whose length is known only at its end goes
// chunked, its SHA-256 after it as a trailer; one that fails on the way
// is not kept by the receiver.
func TestPutUnsized(t *testing.T) {
	t.Parallel()
	ca := testpeer.NewCA(t, "test")
	rc := newReceiver(t, ca, ca, serverOpts{})
	s := newSink(t, rc.URL, ca, ca)
	for _, size := range []int{0, 5, 3 << 20} {
		name := fmt.Sprint("unsized-", size)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			body := bytes.Repeat([]byte("z"), size)
			if err := s.Put(t.Context(), name, bytes.NewReader(body), sinkhttps.Unsized, map[string]string{sinkhttps.HeaderBatch: "b"}); err != nil {
				t.Fatalf("Put: %v", err)
			}
			got, ok := rc.file("/in/" + name)
			if !ok || !bytes.Equal(got, body) {
				t.Fatalf("receiver has %d bytes (%v), want %d", len(got), ok, size)
			}
			rc.mu.Lock()
			hdr := rc.headers["/in/"+name]
			rc.mu.Unlock()
			sum := sha256.Sum256(body)
			if hdr.Get("Test-Chunked") != "yes" || hdr.Get(sinkhttps.HeaderSHA256) != hex.EncodeToString(sum[:]) {
				t.Fatalf("headers and trailers %v: want chunked with the sha256 after the body", hdr)
			}
		})
	}
	t.Run("cut short", func(t *testing.T) {
		t.Parallel()
		cut := io.MultiReader(strings.NewReader("partial"), iotest.ErrReader(errors.New("source gone")))
		err := s.Put(t.Context(), "cut", cut, sinkhttps.Unsized, nil)
		if err == nil || errors.Is(err, sinkhttps.ErrPermanent) || !strings.Contains(err.Error(), "source gone") {
			t.Fatalf("Put: %v, want a retryable error naming the read", err)
		}
		if got, ok := rc.file("/in/cut"); ok {
			t.Fatalf("the receiver kept %q", got)
		}
	})
	t.Run("sha256 header", func(t *testing.T) {
		t.Parallel()
		err := s.Put(t.Context(), "h", strings.NewReader("x"), sinkhttps.Unsized, map[string]string{sinkhttps.HeaderSHA256: strings.Repeat("a", 64)})
		if !errors.Is(err, sinkhttps.ErrPermanent) || !strings.Contains(err.Error(), "trailer") {
			t.Fatalf("Put: %v, want the header refused", err)
		}
	})
}

// TestPutRefusesArguments: a bad path or header is refused before any
// request is made.
func TestPutRefusesArguments(t *testing.T) {
	t.Parallel()
	ca := testpeer.NewCA(t, "test")
	rc := newReceiver(t, ca, ca, serverOpts{})
	s := newSink(t, rc.URL, ca, ca)
	tests := []struct {
		name    string
		rel     string
		headers map[string]string
		want    string
	}{
		{"dotdot", "../etc/passwd", nil, ". or .. segment"},
		{"absolute", "/a", nil, "empty"},
		{"double slash", "a//b", nil, "empty"},
		{"empty", "", nil, "empty path"},
		{"reserved header", "f", map[string]string{"content-length": "1"}, "Content-Length is set by the sink"},
		{"host header", "f", map[string]string{"Host": "elsewhere"}, "Host is set by the sink"},
		{"header newline", "f", map[string]string{"X-A": "a\r\nX-B: b"}, "control character"},
		{"header name", "f", map[string]string{"X A": "a"}, "not a token"},
		{"sha256", "f", map[string]string{sinkhttps.HeaderSHA256: "abc"}, "not 64 hex digits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := s.Put(t.Context(), tt.rel, strings.NewReader("x"), 1, tt.headers)
			if !errors.Is(err, sinkhttps.ErrPermanent) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Put: %v, want a permanent error with %q", err, tt.want)
			}
		})
	}
	if n := rc.requests(); n != 0 {
		t.Fatalf("the receiver got %d requests", n)
	}
}

// TestPutStreams: a 100 MiB body is sent as it is read, not buffered
// first: the reader waits, halfway, until the receiver has 40 MiB, which
// it never would if Put read the whole body before sending.
func TestPutStreams(t *testing.T) {
	ca := testpeer.NewCA(t, "test")
	var received atomic.Int64
	srv := startTLS(t, ca, ca, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(countWriter{&received}, r.Body)
		if err != nil || n != 100<<20 {
			http.Error(w, "short", http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}), serverOpts{})
	s := newSink(t, srv.URL, ca, ca)
	const size = 100 << 20
	peak := heapPeak(t)
	gate := &gatedReader{r: io.LimitReader(zeros{}, size), at: 50 << 20, until: func() bool { return received.Load() >= 40<<20 }}
	if err := s.Put(t.Context(), "big", gate, size, nil); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if gate.timedOut {
		t.Error("the receiver had not 40 MiB when 50 MiB were read: the body was buffered")
	}
	if got := received.Load(); got != size {
		t.Fatalf("received %d bytes, want %d", got, size)
	}
	// Sender and receiver share the heap; both keep it flat.
	if grew := peak(); grew > 32<<20 {
		t.Fatalf("the heap grew by %d MiB sending 100 MiB", grew>>20)
	} else {
		t.Logf("the heap grew by at most %.1f MiB sending 100 MiB", float64(grew)/(1<<20))
	}
}

// heapPeak samples the heap every 20 ms from now; the function it returns
// stops and says how far it rose above where it started.
func heapPeak(t *testing.T) func() int64 {
	t.Helper()
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	base, peak := int64(m.HeapAlloc), int64(0)
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		var m runtime.MemStats
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&m)
			peak = max(peak, int64(m.HeapAlloc)-base)
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() int64 {
		close(done)
		<-stopped
		return peak
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

type countWriter struct{ n *atomic.Int64 }

func (c countWriter) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return len(p), nil
}

// gatedReader, once it has passed at bytes, waits up to 60 s for until.
type gatedReader struct {
	r        io.Reader
	at, read int64
	until    func() bool
	timedOut bool
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if g.read >= g.at && g.at > 0 {
		deadline := time.Now().Add(60 * time.Second)
		for !g.until() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		g.timedOut, g.at = !g.until(), 0
	}
	n, err := g.r.Read(p)
	g.read += int64(n)
	return n, err
}
