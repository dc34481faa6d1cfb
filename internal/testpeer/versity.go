package testpeer

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The root user of every test versitygw.
const (
	versityAccess = "testaccess"
	versitySecret = "testsecret0123456789"
)

// Versity is a versitygw S3 gateway on 127.0.0.1 over a posix directory:
// each sub-directory of Root is a bucket, each file below it an object.
type Versity struct {
	Addr string // host:port of the S3 API
	Root string // a t.TempDir()

	tb   testing.TB
	args []string // more flags, before the backend's
	log  string   // the file versitygw writes its output to, across restarts
	proc *Process // nil while stopped
}

// StartVersity starts versitygw with an empty bucket for each of buckets
// and waits until it listens. It is killed when the test ends, and its
// output logged if the test failed.
func StartVersity(tb testing.TB, buckets ...string) *Versity {
	tb.Helper()
	return StartVersityArgs(tb, nil, buckets...)
}

// StartVersityArgs is StartVersity with more flags for versitygw, such as
// --event-webhook-url.
func StartVersityArgs(tb testing.TB, args []string, buckets ...string) *Versity {
	tb.Helper()
	v := &Versity{Addr: FreeAddr(tb), Root: tb.TempDir(), tb: tb, args: args}
	v.log = filepath.Join(tb.TempDir(), "versitygw.log")
	for _, b := range buckets {
		if err := os.MkdirAll(filepath.Join(v.Root, b), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	tb.Cleanup(func() {
		v.Stop()
		if tb.Failed() {
			out, _ := os.ReadFile(v.log)
			tb.Logf("versitygw log:\n%s", out)
		}
	})
	v.Start()
	return v
}

// Start runs versitygw again, on the same address and directory, after
// Stop; StartVersity has already called it once.
func (v *Versity) Start() {
	v.tb.Helper()
	bin := Require(v.tb, "versitygw")
	out, err := os.OpenFile(v.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		v.tb.Fatal(err)
	}
	defer out.Close()
	args := append([]string{"--access", versityAccess, "--secret", versitySecret, "--port", v.Addr}, v.args...)
	cmd := exec.Command(bin, append(args, "posix", v.Root)...)
	cmd.Stdout, cmd.Stderr = out, out
	v.proc = Start(v.tb, cmd)
	WaitTCP(v.tb, v.Addr, v.proc.Exited())
}

// Stop kills versitygw: to its clients the S3 server is gone at once.
// Stopping a stopped server does nothing.
func (v *Versity) Stop() {
	if v.proc != nil {
		v.proc.Kill()
		v.proc = nil
	}
}

// Env is the environment that gives an S3 client (the AWS SDK) the
// credentials of the gateway's root user, and no others.
func (v *Versity) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + versityAccess,
		"AWS_SECRET_ACCESS_KEY=" + versitySecret,
		"AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// Setenv gives this test's S3 clients the gateway's root credentials in
// the environment, as airlock takes real ones; the test cannot be
// parallel.
func (v *Versity) Setenv(t testing.TB) {
	for _, kv := range v.Env() {
		k, val, _ := strings.Cut(kv, "=")
		t.Setenv(k, val)
	}
}

// S3URL is the storage location (a gocloud URL) of prefix in bucket on
// the S3 server at endpoint: a Versity's Addr, or a proxy in front of it.
func S3URL(endpoint, bucket, prefix string) string {
	return fmt.Sprintf("s3://%s/%s?endpoint=http://%s&use_path_style=true&region=us-east-1", bucket, prefix, endpoint)
}

// RecordingProxy stands in front of an S3 server and records every request
// before passing it on. It keeps the Host header the client signed, so
// that the SigV4 signature still verifies. versitygw accepts SSE-KMS
// headers but neither stores nor returns them, so what the client sent is
// the only evidence of them.
type RecordingProxy struct {
	Addr string // host:port, the endpoint for clients

	mu   sync.Mutex
	reqs []Request
}

// Request is a request as the client sent it to a RecordingProxy.
type Request struct {
	Method string
	URL    *url.URL // path /bucket/key, and the query
	Header http.Header
}

// StartRecordingProxy starts a RecordingProxy in front of the S3 server
// at target (host:port); it is closed when the test ends.
func StartRecordingProxy(tb testing.TB, target string) *RecordingProxy {
	tb.Helper()
	p := &RecordingProxy{}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		p.mu.Lock()
		p.reqs = append(p.reqs, Request{Method: r.In.Method, URL: r.In.URL, Header: r.In.Header.Clone()})
		p.mu.Unlock()
		r.SetURL(&url.URL{Scheme: "http", Host: target})
		r.Out.Host = r.In.Host
	}}
	srv := httptest.NewServer(rp)
	tb.Cleanup(srv.Close)
	p.Addr = srv.Listener.Addr().String()
	return p
}

// Requests returns what was recorded so far, oldest first.
func (p *RecordingProxy) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Request(nil), p.reqs...)
}
