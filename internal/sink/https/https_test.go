package https_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	sinkhttps "github.com/airlock-gw/airlock/internal/sink/https"
	"github.com/airlock-gw/airlock/internal/testpeer"
)

// receiver is an HTTPS server that asks for a client certificate from
// its CA and keeps what is PUT to it.
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	files   map[string][]byte      // by unescaped path
	raw     map[string]string      // escaped path by unescaped path
	headers map[string]http.Header // by unescaped path
	answers []int                  // statuses to answer first, in order; then 201
	reqs    int
}

// serverOpts vary a test receiver's TLS.
type serverOpts struct {
	hosts      []string // of its certificate; testpeer's default when empty
	maxVersion uint16   // of TLS; Go's default when 0
}

// newReceiver starts a receiver with a server certificate from serverCA
// that requires a client certificate from clientCA.
func newReceiver(t *testing.T, serverCA, clientCA *testpeer.CA, o serverOpts) *receiver {
	t.Helper()
	rc := &receiver{files: map[string][]byte{}, raw: map[string]string{}, headers: map[string]http.Header{}}
	rc.Server = startTLS(t, serverCA, clientCA, http.HandlerFunc(rc.serve), o)
	return rc
}

func startTLS(t *testing.T, serverCA, clientCA *testpeer.CA, h http.Handler, o serverOpts) *httptest.Server {
	t.Helper()
	pair := serverCA.Server("receiver", o.hosts...)
	cert, err := tls.LoadX509KeyPair(pair.Cert, pair.Key)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	// Refused handshakes are the point of some tests, not news.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool(t, clientCA.CertFile),
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MaxVersion:   o.maxVersion,
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func pool(t *testing.T, file string) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", file)
	}
	return p
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		http.Error(w, "PUT only", http.StatusMethodNotAllowed)
		return
	}
	rc.mu.Lock()
	rc.reqs++
	var status int
	if len(rc.answers) > 0 {
		status, rc.answers = rc.answers[0], rc.answers[1:]
	}
	rc.mu.Unlock()
	if status != 0 {
		http.Error(w, "answer "+http.StatusText(status), status)
		return
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return // a body cut short is no file
	}
	rc.mu.Lock()
	rc.files[r.URL.Path] = b
	rc.raw[r.URL.Path] = r.URL.EscapedPath()
	h := r.Header.Clone()
	maps.Copy(h, r.Trailer)
	if r.ContentLength < 0 {
		h.Set("Test-Chunked", "yes")
	}
	rc.headers[r.URL.Path] = h
	rc.mu.Unlock()
	w.WriteHeader(http.StatusCreated)
}

func (rc *receiver) file(path string) ([]byte, bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	b, ok := rc.files[path]
	return b, ok
}

func (rc *receiver) requests() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.reqs
}

// newSink returns a Sink for base + "/in/" with a client certificate
// from clientCA, trusting serverCA.
func newSink(t *testing.T, base string, serverCA, clientCA *testpeer.CA) *sinkhttps.Sink {
	t.Helper()
	pair := clientCA.Client("airlock")
	s, err := sinkhttps.New(base+"/in/", sinkhttps.TLSFiles{Cert: pair.Cert, Key: pair.Key, CA: serverCA.CertFile}, sinkhttps.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNew(t *testing.T) {
	t.Parallel()
	ca := testpeer.NewCA(t, "test")
	pair := ca.Client("airlock")
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	good := sinkhttps.TLSFiles{Cert: pair.Cert, Key: pair.Key, CA: ca.CertFile}
	tests := []struct {
		name  string
		base  string
		files sinkhttps.TLSFiles
		want  string // in the error; "" for success
	}{
		{"https", "https://127.0.0.1:8091/DA", good, ""},
		{"no client certificate", "https://127.0.0.1:8091/DA/", sinkhttps.TLSFiles{CA: ca.CertFile}, ""},
		{"http loopback", "http://127.0.0.1:8091/DA/", sinkhttps.TLSFiles{}, ""},
		{"http elsewhere", "http://192.0.2.1:8091/DA/", sinkhttps.TLSFiles{}, `http is allowed only to a loopback address, not "192.0.2.1"`},
		{"http with tls files", "http://localhost/DA/", good, "tls files are set but the url is http"},
		{"ftp", "ftp://127.0.0.1/DA/", good, `url scheme "ftp"`},
		{"no host", "https:///DA/", good, "no host"},
		{"credentials", "https://u:secret@127.0.0.1/DA/", good, "url has credentials"},
		{"query", "https://127.0.0.1/DA/?x=1", good, "query or fragment"},
		{"no ca", "https://127.0.0.1/DA/", sinkhttps.TLSFiles{Cert: pair.Cert, Key: pair.Key}, "tls.ca is required"},
		{"ca missing", "https://127.0.0.1/DA/", sinkhttps.TLSFiles{CA: missing}, "tls.ca: open " + missing},
		{"ca not pem", "https://127.0.0.1/DA/", sinkhttps.TLSFiles{CA: notPEM}, "tls.ca " + notPEM + ": no PEM certificate"},
		{"cert without key", "https://127.0.0.1/DA/", sinkhttps.TLSFiles{Cert: pair.Cert, CA: ca.CertFile}, "set both or neither"},
		{"cert missing", "https://127.0.0.1/DA/", sinkhttps.TLSFiles{Cert: missing, Key: pair.Key, CA: ca.CertFile}, "tls.cert: open " + missing},
		{"key missing", "https://127.0.0.1/DA/", sinkhttps.TLSFiles{Cert: pair.Cert, Key: missing, CA: ca.CertFile}, "tls.key: open " + missing},
		{"key not pem", "https://127.0.0.1/DA/", sinkhttps.TLSFiles{Cert: pair.Cert, Key: notPEM, CA: ca.CertFile}, "tls.cert " + pair.Cert + " with tls.key " + notPEM},
		{"key of another cert", "https://127.0.0.1/DA/", sinkhttps.TLSFiles{Cert: pair.Cert, Key: ca.Client("other").Key, CA: ca.CertFile}, "private key does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := sinkhttps.New(tt.base, tt.files, sinkhttps.Options{})
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("New: %v, want an error with %q", err, tt.want)
			case err != nil && strings.Contains(err.Error(), "secret"):
				t.Fatalf("New: %v shows the password", err)
			}
			if s != nil && strings.Contains(s.Describe(), tt.files.Key) && tt.files.Key != "" {
				t.Errorf("Describe %q names the key file", s.Describe())
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	ca := testpeer.NewCA(t, "test")
	pair := ca.Client("airlock-egress")
	s, err := sinkhttps.New("https://127.0.0.1:8091/DA", sinkhttps.TLSFiles{Cert: pair.Cert, Key: pair.Key, CA: ca.CertFile}, sinkhttps.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := s.Describe()
	for _, want := range []string{"https://127.0.0.1:8091/DA/", `"airlock-egress"`, ca.CertFile} {
		if !strings.Contains(d, want) {
			t.Errorf("Describe = %q, want %q in it", d, want)
		}
	}
	if strings.Contains(d, pair.Key) {
		t.Errorf("Describe = %q names the key", d)
	}
}
