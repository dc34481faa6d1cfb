package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

const hookSecret = "s3cret-hook-key"

var hookEnv = func(k string) string {
	if k == "HOOK_SECRET" {
		return hookSecret
	}
	return ""
}

var delivered = Outcome{
	Event:       EventDelivered,
	TransferID:  "tr_01J9ZK",
	Supplier:    "acme_health",
	Path:        "/2026/data.csv",
	Size:        1234567,
	SHA256:      strings.Repeat("ab", 32),
	ScanResult:  "clean (clamd ClamAV 1.4.6)",
	Destination: "s3://mojap-land/acme/2026/data.csv",
	At:          time.Date(2026, 3, 1, 12, 0, 5, 0, time.UTC),
}

// hookRequest is one request as a test receiver got it.
type hookRequest struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
}

// receiver is an httptest handler that keeps what it receives and answers
// with status (200 when 0), body and header.
type receiver struct {
	status int
	body   string
	header map[string]string

	mu   sync.Mutex
	reqs []hookRequest
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, hookRequest{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: b})
	rc.mu.Unlock()
	for k, v := range rc.header {
		w.Header().Set(k, v)
	}
	if rc.status != 0 {
		w.WriteHeader(rc.status)
	}
	io.WriteString(w, rc.body)
}

func (rc *receiver) requests() []hookRequest {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]hookRequest(nil), rc.reqs...)
}

func newTestWebhook(t *testing.T, url string, client *http.Client) *Webhook {
	t.Helper()
	w, err := NewWebhook(url, "HOOK_SECRET", hookEnv, client)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestWebhookSend: over https, one POST with the headers, a signature the
// receiver can verify, and the body the design promises.
func TestWebhookSend(t *testing.T) {
	t.Parallel()
	rc := &receiver{status: http.StatusNoContent}
	srv := httptest.NewTLSServer(rc)
	t.Cleanup(srv.Close)
	w := newTestWebhook(t, srv.URL+"/hooks/airlock", srv.Client())

	before := time.Now()
	if err := w.Send(t.Context(), "dlv-1", delivered); err != nil {
		t.Fatal(err)
	}
	reqs := rc.requests()
	if len(reqs) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Method != http.MethodPost || r.Path != "/hooks/airlock" {
		t.Errorf("%s %s, want POST /hooks/airlock", r.Method, r.Path)
	}
	for name, want := range map[string]string{
		"Content-Type":       "application/json",
		"User-Agent":         "airlock",
		"X-Airlock-Event":    "transfer.delivered",
		"X-Airlock-Delivery": "dlv-1",
	} {
		if got := r.Header.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	sig := r.Header.Get("X-Airlock-Signature-256")
	if !VerifySignature([]byte(hookSecret), r.Body, sig) {
		t.Errorf("signature %q does not verify", sig)
	}
	tampered := append([]byte(nil), r.Body...)
	tampered[len(tampered)/2] ^= 1
	if VerifySignature([]byte(hookSecret), tampered, sig) {
		t.Error("signature verifies a tampered body")
	}

	var got map[string]any
	if err := json.Unmarshal(r.Body, &got); err != nil {
		t.Fatal(err)
	}
	sentAt, err := time.Parse(time.RFC3339, got["sent_at"].(string))
	if err != nil || sentAt.Before(before.Add(-time.Second)) || sentAt.After(time.Now().Add(time.Second)) {
		t.Errorf("sent_at %q: %v", got["sent_at"], err)
	}
	delete(got, "sent_at")
	want := map[string]any{
		"event":       "transfer.delivered",
		"delivery_id": "dlv-1",
		"transfer": map[string]any{
			"id":          "tr_01J9ZK",
			"supplier":    "acme_health",
			"path":        "/2026/data.csv",
			"size":        1234567.0,
			"sha256":      strings.Repeat("ab", 32),
			"scan_result": "clean (clamd ClamAV 1.4.6)",
			"destination": "s3://mojap-land/acme/2026/data.csv",
			"error":       "",
			"at":          "2026-03-01T12:00:05Z",
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("body %s\nwant (apart from sent_at) %v", r.Body, want)
	}
}

// TestWebhookStatus: 2xx succeeds; other answers are errors quoting the
// status and the start of the body, permanent only for a 4xx other than
// 408 and 429; redirects are not followed, to any host.
func TestWebhookStatus(t *testing.T) {
	t.Parallel()
	elsewhere := &receiver{}
	other := httptest.NewServer(elsewhere)
	t.Cleanup(other.Close)
	long := strings.Repeat("x", 1000)
	tests := []struct {
		name      string
		rc        *receiver
		want      string // in the error; "" for success
		permanent bool
	}{
		{name: "200", rc: &receiver{body: "ok"}},
		{name: "202", rc: &receiver{status: 202}},
		{name: "500", rc: &receiver{status: 500, body: "database down"}, want: `500 Internal Server Error: "database down"`},
		{name: "503", rc: &receiver{status: 503}, want: "503 Service Unavailable"},
		{name: "400", rc: &receiver{status: 400, body: `{"error":"bad signature"}`}, want: `400 Bad Request: "{\"error\":\"bad signature\"}"`, permanent: true},
		{name: "404", rc: &receiver{status: 404}, want: "404 Not Found", permanent: true},
		{name: "408", rc: &receiver{status: 408}, want: "408 Request Timeout"},
		{name: "429", rc: &receiver{status: 429, body: "slow down"}, want: `429 Too Many Requests: "slow down"`},
		{name: "long body is cut", rc: &receiver{status: 502, body: long}, want: `502 Bad Gateway: "` + long[:200] + `"`},
		{
			name: "redirect to another host",
			rc:   &receiver{status: 307, header: map[string]string{"Location": other.URL + "/hook?token=abc"}},
			want: "307 Temporary Redirect: \"\" (redirect to " + other.URL + "/hook not followed)",
		},
		{
			name: "redirect on the same host",
			rc:   &receiver{status: 301, header: map[string]string{"Location": "/v2/hook"}},
			want: "301 Moved Permanently",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(tt.rc)
			t.Cleanup(srv.Close)
			w := newTestWebhook(t, srv.URL+"/hook", nil)
			err := w.Send(t.Context(), "dlv-"+tt.name, delivered)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Send: %v", err)
			case tt.want == "":
			case err == nil:
				t.Fatalf("Send succeeded, want an error with %q", tt.want)
			case !strings.HasPrefix(err.Error(), "webhook "+srv.URL+"/hook: ") || !strings.Contains(err.Error(), tt.want):
				t.Errorf("Send: %v\nwant an error naming the webhook, with %q", err, tt.want)
			case errors.Is(err, ErrPermanent) != tt.permanent:
				t.Errorf("Send: %v; permanent %v, want %v", err, errors.Is(err, ErrPermanent), tt.permanent)
			}
			for _, r := range tt.rc.requests() {
				if r.Path != "/hook" {
					t.Errorf("redirect followed to %s", r.Path)
				}
			}
		})
	}
	if n := len(elsewhere.requests()); n != 0 {
		t.Errorf("the other host got %d requests, want none", n)
	}
}

func TestNewWebhook(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, url, env string
		want           string // error prefix; "" for success
	}{
		{"https", "https://hooks.example.org/airlock", "HOOK_SECRET", ""},
		{"http to 127.0.0.1", "http://127.0.0.1:9000/hook", "HOOK_SECRET", ""},
		{"http to localhost", "http://localhost/hook", "HOOK_SECRET", ""},
		{"http to ::1", "http://[::1]:9000/hook", "HOOK_SECRET", ""},
		{"http elsewhere", "http://user:pw-in-url@hooks.example.org/airlock?token=tok-in-url", "HOOK_SECRET",
			`webhook http://hooks.example.org/airlock: http is allowed only for a loopback address, not "hooks.example.org"`},
		{"http to a LAN address", "http://10.0.0.5/hook", "HOOK_SECRET", "webhook http://10.0.0.5/hook: http is allowed only for a loopback address"},
		{"other scheme", "ftp://hooks.example.org/x", "HOOK_SECRET", `webhook ftp://hooks.example.org/x: url scheme "ftp"`},
		{"no host", "https:///hook", "HOOK_SECRET", "webhook https:///hook: url has no host"},
		{"not a URL", "https://user:pw-in-url@hooks example.org/", "HOOK_SECRET", "webhook: url: invalid character"},
		{"secret unset", "https://hooks.example.org/airlock", "NOPE", "webhook https://hooks.example.org/airlock: the secret environment variable NOPE is not set or empty"},
		{"secret env not named", "https://hooks.example.org/airlock", "", "webhook https://hooks.example.org/airlock: no secret environment variable is named"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w, err := NewWebhook(tt.url, tt.env, hookEnv, nil)
			switch {
			case tt.want == "" && (err != nil || w == nil):
				t.Errorf("NewWebhook: %v", err)
			case tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.want)):
				t.Errorf("NewWebhook: %v\nwant %q", err, tt.want)
			case err != nil && strings.Contains(err.Error(), "-in-url") || err != nil && strings.Contains(err.Error(), hookSecret):
				t.Errorf("NewWebhook: %v: shows a secret", err)
			}
		})
	}
}

func TestWebhookTarget(t *testing.T) {
	t.Parallel()
	w := newTestWebhook(t, "https://user:pw@hooks.example.org:8443/a/b?token=x#frag", nil)
	if got, want := w.Target(), "https://hooks.example.org:8443/a/b"; got != want {
		t.Errorf("Target %q, want %q", got, want)
	}
}

// TestWebhookClient: the default client has a timeout and TLS 1.2 or
// later; a given client gets redirects turned off in a copy, leaving the
// caller's as it was.
func TestWebhookClient(t *testing.T) {
	t.Parallel()
	w := newTestWebhook(t, "https://hooks.example.org/", nil)
	tr, ok := w.client.Transport.(*http.Transport)
	if !ok || tr.TLSClientConfig == nil || tr.TLSClientConfig.MinVersion < tls.VersionTLS12 {
		t.Errorf("default transport %#v: want TLS 1.2 or later", w.client.Transport)
	}
	if w.client.Timeout != 10*time.Second || w.client.CheckRedirect == nil {
		t.Errorf("default client: timeout %v, CheckRedirect set %v", w.client.Timeout, w.client.CheckRedirect != nil)
	}

	mine := &http.Client{Timeout: time.Second}
	w = newTestWebhook(t, "https://hooks.example.org/", mine)
	if w.client == mine || w.client.Timeout != time.Second || w.client.CheckRedirect == nil {
		t.Errorf("given client: shared %v, timeout %v", w.client == mine, w.client.Timeout)
	}
	if mine.CheckRedirect != nil {
		t.Error("the caller's client was changed")
	}
	if w = newTestWebhook(t, "https://hooks.example.org/", &http.Client{}); w.client.Timeout != DefaultWebhookTimeout {
		t.Errorf("given client without timeout: %v", w.client.Timeout)
	}
}

// TestWebhookGivesUp: a receiver that never answers does not hold Send
// past its context's cancellation or deadline, or the client's timeout;
// none of these is permanent.
func TestWebhookGivesUp(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first: Close waits for handlers
	tests := []struct {
		name   string
		ctx    func(context.Context) (context.Context, context.CancelFunc)
		client *http.Client
		want   error
	}{
		{"cancel", func(ctx context.Context) (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(ctx)
			time.AfterFunc(200*time.Millisecond, cancel)
			return ctx, cancel
		}, nil, context.Canceled},
		{"deadline", func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithTimeout(ctx, 200*time.Millisecond)
		}, nil, context.DeadlineExceeded},
		{"client timeout", func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithCancel(ctx)
		}, &http.Client{Timeout: 200 * time.Millisecond}, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newTestWebhook(t, srv.URL, tt.client)
			ctx, cancel := tt.ctx(t.Context())
			defer cancel()
			start := time.Now()
			err := w.Send(ctx, "dlv-1", delivered)
			if !errors.Is(err, tt.want) || errors.Is(err, ErrPermanent) || !strings.HasPrefix(err.Error(), "webhook "+srv.URL+": ") {
				t.Errorf("Send: %v, want a retryable %v naming the webhook", err, tt.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Send took %v", d)
			}
		})
	}
}

// TestWebhookUnreachable: nobody listening is worth a retry.
func TestWebhookUnreachable(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + "/hook"
	ln.Close()
	err = newTestWebhook(t, url+"?token=abc", nil).Send(t.Context(), "dlv-1", delivered)
	if err == nil || errors.Is(err, ErrPermanent) || !strings.HasPrefix(err.Error(), "webhook "+url+": ") || strings.Contains(err.Error(), "abc") {
		t.Errorf("Send: %v, want a retryable error naming %s (without its query)", err, url)
	}
}

// TestWebhookBadHeaders: what cannot go in a header is refused for good,
// before anything is sent.
func TestWebhookBadHeaders(t *testing.T) {
	t.Parallel()
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)
	w := newTestWebhook(t, srv.URL, nil)
	bad := delivered
	bad.Event = "transfer.delivered\r\nX-Evil: 1"
	tests := []struct {
		name string
		id   string
		o    Outcome
	}{
		{"empty delivery id", "", delivered},
		{"line break in delivery id", "dlv\n1", delivered},
		{"line break in event", "dlv-1", bad},
		{"no event", "dlv-1", Outcome{TransferID: "tr_1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := w.Send(t.Context(), tt.id, tt.o); !errors.Is(err, ErrPermanent) {
				t.Errorf("Send: %v, want ErrPermanent", err)
			}
		})
	}
	t.Cleanup(func() {
		if n := len(rc.requests()); n != 0 {
			t.Errorf("receiver got %d requests, want none", n)
		}
	})
}

// signature computes the header independently of the code under test.
func signature(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func TestVerifySignature(t *testing.T) {
	t.Parallel()
	secret, body := []byte(hookSecret), []byte(`{"event":"transfer.delivered"}`)
	good := signature(secret, body)
	tests := []struct {
		name         string
		secret, body []byte
		header       string
		want         bool
	}{
		{"exact", secret, body, good, true},
		{"tampered body", secret, []byte(`{"event":"transfer.quarantined"}`), good, false},
		{"other secret", []byte("guess"), body, good, false},
		{"no prefix", secret, body, strings.TrimPrefix(good, "sha256="), false},
		{"upper-case hex", secret, body, "sha256=" + strings.ToUpper(strings.TrimPrefix(good, "sha256=")), false},
		{"truncated", secret, body, good[:len(good)-2], false},
		{"empty header", secret, body, "", false},
		{"empty secret", nil, body, signature(nil, body), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := VerifySignature(tt.secret, tt.body, tt.header); got != tt.want {
				t.Errorf("VerifySignature = %v, want %v", got, tt.want)
			}
		})
	}
}

// FuzzVerifySignature: no input panics, and only the exact signature of
// body under a non-empty secret verifies.
func FuzzVerifySignature(f *testing.F) {
	f.Add([]byte(hookSecret), []byte(`{"event":"transfer.delivered"}`), "")
	f.Add([]byte("k"), []byte(""), signature([]byte("k"), nil))
	f.Add([]byte(""), []byte("x"), "sha256=")
	f.Fuzz(func(t *testing.T, secret, body []byte, header string) {
		exact := signature(secret, body)
		if got, want := VerifySignature(secret, body, header), len(secret) > 0 && header == exact; got != want {
			t.Errorf("VerifySignature(%q, %q, %q) = %v, want %v", secret, body, header, got, want)
		}
		if len(secret) > 0 && !VerifySignature(secret, body, exact) {
			t.Errorf("the exact signature of %q under %q does not verify", body, secret)
		}
		if longer := append(bytes.Clone(body), 0); VerifySignature(secret, longer, exact) {
			t.Errorf("the signature of %q verifies %q", body, longer)
		}
	})
}
