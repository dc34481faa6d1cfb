package integration

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/airlock-gw/airlock/internal/storage"
	"github.com/airlock-gw/airlock/internal/storage/storagetest"
	"github.com/airlock-gw/airlock/internal/testpeer"
	"github.com/airlock-gw/airlock/internal/watch"
)

// The export area's watch (internal/watch) against the real stores it
// watches: versitygw, with its bucket notifications, and a directory.

// found records what a Poller hands over, and when.
type found struct {
	mu   sync.Mutex
	objs map[string]watch.Object
	at   map[string]time.Time
}

func newFound() *found {
	return &found{objs: make(map[string]watch.Object), at: make(map[string]time.Time)}
}

func (f *found) Found(_ context.Context, o watch.Object) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.objs[o.Key], f.at[o.Key] = o, time.Now()
	return nil
}

func (f *found) get(key string) (watch.Object, time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.objs[key]
	return o, f.at[key], ok
}

func (f *found) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.objs)
}

// serveLocal serves h on 127.0.0.1 until the test ends and returns its URL.
func serveLocal(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/"
}

// TestWatchNotificationIsFasterThanPolling: versitygw POSTs its bucket
// notifications to watch.Webhook, which kicks the poller: an object put is
// handed over in seconds though the poller lists only once a minute.
func TestWatchNotificationIsFasterThanPolling(t *testing.T) {
	var notifications syncBuffer // kept for the failure message
	reg := prometheus.NewRegistry()
	m := watch.NewMetrics(reg)
	var hook http.Handler // set once the poller exists; versitygw sends a test event at start
	var hookMu sync.Mutex
	url := serveLocal(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		notifications.Write(append(body, '\n'))
		r.Body = io.NopCloser(bytes.NewReader(body))
		hookMu.Lock()
		h := hook
		hookMu.Unlock()
		if h == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.ServeHTTP(w, r)
	}))
	v := testpeer.StartVersityArgs(t, []string{"--event-webhook-url", url}, "exports")
	v.Setenv(t)
	st := openStore(t, testpeer.S3URL(v.Addr, "exports", "area"))
	got := newFound()
	p := watch.NewPoller(st, "ds/", watch.Options{Every: time.Minute, Metrics: m}, got, testLog(t))
	hookMu.Lock()
	hook = watch.Webhook(watch.WebhookOptions{Metrics: m}, p)
	hookMu.Unlock()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	polls := func(trigger string) float64 {
		return counter(t, reg, "airlock_watch_polls_total", trigger)
	}
	eventually(t, 10*time.Second, "the first poll", func() bool { return polls("timer") == 1 })

	for _, key := range []string{"ds/a.bin", "ds/nested/dir/b c+d.bin"} {
		start := time.Now()
		storagetest.Put(t, st, key, storagetest.Data(1000))
		eventually(t, 30*time.Second, key+" handed over", func() bool { _, _, ok := got.get(key); return ok })
		o, at, _ := got.get(key)
		took := at.Sub(start)
		if took > 5*time.Second {
			t.Errorf("%s handed over %s after the put, want < 5 s (polls every minute)", key, took)
		}
		t.Logf("%s handed over %s after the put", key, took)
		if o.Size != 1000 || o.ETag == "" {
			t.Errorf("handed over %+v, want 1000 bytes and an ETag", o)
		}
	}
	if polls("kick") < 1 || polls("timer") != 1 {
		t.Errorf("polls: %v kicked, %v on the timer; want kicks and the first alone\nnotifications:\n%s",
			polls("kick"), polls("timer"), notifications.String())
	}
	if n := counter(t, reg, "airlock_watch_notifications_total", "accepted"); n < 2 {
		t.Errorf("%v notifications accepted, want at least the 2 puts", n)
	}
}

// TestWatchS3MultipartInProgress: an object whose multipart upload is not
// complete is not handed over; once CompleteMultipartUpload returns, it is,
// whole.
func TestWatchS3MultipartInProgress(t *testing.T) {
	v := testpeer.StartVersity(t, "exports")
	v.Setenv(t)
	st := openStore(t, testpeer.S3URL(v.Addr, "exports", ""))
	got := newFound()
	p := watch.NewPoller(st, "ds/", watch.Options{}, got, testLog(t))
	client := s3Client(t, v)
	ctx := t.Context()
	key := aws.String("ds/big.bin")
	up, err := client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("exports"), Key: key})
	if err != nil {
		t.Fatal(err)
	}
	var parts []types.CompletedPart
	for i, size := range []int{5 << 20, 1 << 20} {
		n := aws.Int32(int32(i + 1))
		out, err := client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket: aws.String("exports"), Key: key, UploadId: up.UploadId, PartNumber: n,
			Body: bytes.NewReader(storagetest.Data(size)),
		})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: n})
		if err := p.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		if got.count() != 0 {
			t.Fatalf("handed over after part %d of an upload in progress", i+1)
		}
	}
	inProgress, err := client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String("exports")})
	if err != nil || len(inProgress.Uploads) != 1 {
		t.Fatalf("uploads in progress: %v, %v; want the one", inProgress, err)
	}
	_, err = client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String("exports"), Key: key, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	if o, _, ok := got.get(*key); !ok || o.Size != 6<<20 {
		t.Fatalf("after the upload completed, handed over %+v (%v), want 6 MiB", o, ok)
	}
}

// TestWatchLocalFileStillWritten: a file a slow writer appends to in a
// local export directory is handed over only after it stops, whole.
func TestWatchLocalFileStillWritten(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	st := openStore(t, root)
	got := newFound()
	p := watch.NewPoller(st, "", watch.Options{Every: 500 * time.Millisecond}, got, testLog(t))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	path := filepath.Join(root, "ds", "slow.bin")
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const steps, chunk = 20, 32 << 10
	for range steps { // 20 writes 100 ms apart, Settle is 1 s
		if _, err := f.Write(storagetest.Data(chunk)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		if o, _, ok := got.get("ds/slow.bin"); ok {
			t.Fatalf("handed over at %d bytes while the file is being written", o.Size)
		}
	}
	stopped := time.Now()
	eventually(t, 30*time.Second, "the file handed over", func() bool { _, _, ok := got.get("ds/slow.bin"); return ok })
	o, at, _ := got.get("ds/slow.bin")
	if o.Size != steps*chunk {
		t.Errorf("handed over %d bytes, want all %d", o.Size, steps*chunk)
	}
	if waited := at.Sub(stopped); waited < 500*time.Millisecond {
		t.Errorf("handed over %s after the last write, before it could have held still for Settle (1 s)", waited)
	}
}

func openStore(t *testing.T, location string) *storage.Store {
	t.Helper()
	st, err := storage.Open(t.Context(), location)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// s3Client is an S3 client of v's root user.
func s3Client(t *testing.T, v *testpeer.Versity) *s3.Client {
	t.Helper()
	env := make(map[string]string)
	for _, kv := range v.Env() {
		k, val, _ := strings.Cut(kv, "=")
		env[k] = val
	}
	creds := aws.Credentials{AccessKeyID: env["AWS_ACCESS_KEY_ID"], SecretAccessKey: env["AWS_SECRET_ACCESS_KEY"]}
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String("http://" + v.Addr),
		UsePathStyle: true,
		Credentials:  aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) { return creds, nil }),
	})
}

// counter is the value of the counter name with a label of value label
// in reg.
func counter(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// testLog logs, at every level, to the test's output.
func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
