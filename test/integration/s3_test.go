package integration

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

// s3Server is a versitygw S3 gateway over a posix directory: each
// sub-directory of root is a bucket, each file an object.
type s3Server struct {
	t      *testing.T
	addr   string
	root   string
	access string
	secret string

	proc *child // nil while stopped
	log  *syncBuffer
}

func startVersity(t *testing.T, buckets ...string) *s3Server {
	t.Helper()
	s := &s3Server{t: t, addr: freeAddr(t), root: t.TempDir(), access: "itestaccess", secret: "itestsecret0123456789", log: &syncBuffer{}}
	for _, b := range buckets {
		if err := os.MkdirAll(filepath.Join(s.root, b), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s.start()
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("versitygw log:\n%s", s.log.String())
		}
	})
	return s
}

// start runs versitygw on the server's address and waits until it listens.
func (s *s3Server) start() {
	s.t.Helper()
	bin := requireTool(s.t, "versitygw")
	cmd := exec.Command(bin, "--access", s.access, "--secret", s.secret, "--port", s.addr, "posix", s.root)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	s.proc = startChild(s.t, cmd)
	waitTCP(s.t, s.addr, s.proc.exited)
}

// stop kills versitygw: to the gateway the S3 server is gone at once.
func (s *s3Server) stop() {
	if s.proc != nil {
		s.proc.kill()
		s.proc = nil
	}
}

// url is the gocloud URL of bucket.
func (s *s3Server) url(bucket string) string {
	return fmt.Sprintf("s3://%s?endpoint=http://%s&use_path_style=true&region=us-east-1", bucket, s.addr)
}

// dest is a supplier destination under prefix in bucket.
func (s *s3Server) dest(bucket, prefix string) destination {
	return destination{
		url: fmt.Sprintf("s3://%s/%s?endpoint=http://%s&use_path_style=true&region=us-east-1", bucket, prefix, s.addr),
		dir: filepath.Join(s.root, bucket, filepath.FromSlash(prefix)),
	}
}

// env gives a process the credentials of the gateway's root user.
func (s *s3Server) env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.access,
		"AWS_SECRET_ACCESS_KEY=" + s.secret,
		"AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// objects returns the sha256 of every object below dir (a bucket
// directory or a prefix in it), by key relative to dir. versitygw keeps
// uploads in progress under .sgwtmp, which holds no object.
func objects(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := make(map[string]string)
	for _, p := range landedFiles(t, dir) {
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(rel, ".sgwtmp") {
			continue
		}
		out[filepath.ToSlash(rel)] = fileSHA256(t, p)
	}
	return out
}

// s3Request is one request a recordingProxy passed on.
type s3Request struct {
	Method string
	Path   string // the URL path: /bucket/key
	Query  url.Values
	Header http.Header
}

// recordingProxy stands in front of an S3 server and records every request
// before passing it on. It keeps the Host header the client signed, so
// that the SigV4 signature still verifies: versitygw accepts SSE-KMS
// headers but neither stores nor returns them, so what airlock sent is
// the only evidence of them.
type recordingProxy struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []s3Request
}

func startRecordingProxy(t *testing.T, s *s3Server) *recordingProxy {
	t.Helper()
	target := &url.URL{Scheme: "http", Host: s.addr}
	p := &recordingProxy{}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host
	}}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.reqs = append(p.reqs, s3Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone()})
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// requests returns what was recorded so far.
func (p *recordingProxy) requests() []s3Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]s3Request(nil), p.reqs...)
}

// via is s's destination under prefix in bucket, reached through the proxy.
func (p *recordingProxy) via(s *s3Server, bucket, prefix string) destination {
	d := s.dest(bucket, prefix)
	d.url = strings.Replace(d.url, "http://"+s.addr, p.srv.URL, 1)
	return d
}
