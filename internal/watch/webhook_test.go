package watch

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// inBucket is a Lister in a bucket under a prefix, as a storage.Store on
// S3 is.
type inBucket struct {
	*fakeStore
	name, prefix string
}

func (b inBucket) Bucket() (string, string) { return b.name, b.prefix }

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// notification is an S3 event notification of objs.
func notification(objs ...Notified) string {
	var ev s3Event
	for _, o := range objs {
		var r s3Record
		r.S3.Bucket.Name, r.S3.Object.Key = o.Bucket, o.Key
		ev.Records = append(ev.Records, r)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func event(bucket, key string) string { return notification(Notified{bucket, key}) }

func TestWebhook(t *testing.T) {
	t.Parallel()
	// "area/ds/" of bucket exports, "my ds/" of any bucket (a local
	// directory), and "other/" of exports.
	pollers := func() []*Poller {
		return []*Poller{
			NewPoller(inBucket{newFakeStore(), "exports", "area/"}, "ds/", Options{}, &recorder{}, quiet()),
			NewPoller(newFakeStore(), "my ds/", Options{}, &recorder{}, quiet()),
			NewPoller(inBucket{newFakeStore(), "exports", ""}, "other/", Options{}, &recorder{}, quiet()),
		}
	}
	versitygw := readFile(t, "testdata/versitygw-put.json")
	tests := []struct {
		name, method, auth, body string
		token                    string
		status                   int
		kicked                   []int // indexes of the pollers kicked
		says                     string
		result                   string // counted
	}{
		{"versitygw's put", "POST", "", versitygw, "", 204, []int{0}, "", "accepted"},
		{"versitygw's test event", "POST", "", readFile(t, "testdata/versitygw-test-event.json"), "", 204, nil, "", "accepted"},
		{"AWS's URL-encoded key", "POST", "", event("exports", "my+ds/a%2Bb.bin"), "", 204, []int{1}, "", "accepted"},
		{"another bucket", "POST", "", event("elsewhere", "area/ds/a"), "", 204, nil, "", "accepted"},
		{"two records", "POST", "", notification(Notified{"exports", "other/x"}, Notified{"b", "my ds/y"}), "", 204, []int{1, 2}, "", "accepted"},
		{"a record without a key", "POST", "", `{"Records":[{"s3":{"bucket":{"name":"exports"}}}]}`, "", 204, nil, "", "accepted"},
		{"not JSON", "POST", "", `Records: [...]`, "", 400, nil, "not an S3 event notification", "invalid"},
		{"Records not a list", "POST", "", `{"Records":{"s3":{}}}`, "", 400, nil, "not an S3 event notification", "invalid"},
		{"data after the object", "POST", "", event("exports", "area/ds/a") + "{}", "", 400, nil, "data after the JSON object", "invalid"},
		{"too large", "POST", "", `{"Records":[], "x":"` + strings.Repeat("x", MaxNotification) + `"}`, "", 413, nil, "larger than 1 MiB", "invalid"},
		{"GET", "GET", "", "", "", 405, nil, "POSTed", ""},
		{"token: right", "POST", "Bearer s3cret", versitygw, "s3cret", 204, []int{0}, "", "accepted"},
		{"token: missing", "POST", "", versitygw, "s3cret", 401, nil, "bearer token", "unauthorized"},
		{"token: wrong", "POST", "Bearer s3cres", versitygw, "s3cret", 401, nil, "bearer token", "unauthorized"},
		{"token: not bearer", "POST", "Basic czNjcmV0", versitygw, "s3cret", 401, nil, "bearer token", "unauthorized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ps := pollers()
			m := NewMetrics(prometheus.NewRegistry())
			// The first is fixed; the others come and go, as a route's do.
			set := &Pollers{}
			gone := NewPoller(inBucket{newFakeStore(), "exports", "area/"}, "ds/", Options{}, &recorder{}, quiet())
			set.Add(gone)()
			for _, p := range ps[1:] {
				set.Add(p)
			}
			h := Webhook(WebhookOptions{Token: tt.token, Pollers: set, Metrics: m}, ps[0])
			req := httptest.NewRequest(tt.method, "/", strings.NewReader(tt.body))
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.status || !strings.Contains(rec.Body.String(), tt.says) {
				t.Errorf("status %d %q, want %d saying %q", rec.Code, rec.Body.String(), tt.status, tt.says)
			}
			var kicked []int
			for i, p := range ps {
				if len(p.kick) > 0 {
					kicked = append(kicked, i)
				}
			}
			if !slices.Equal(kicked, tt.kicked) && len(kicked)+len(tt.kicked) > 0 {
				t.Errorf("kicked pollers %v, want %v", kicked, tt.kicked)
			}
			if len(gone.kick) > 0 {
				t.Error("a poller removed from the set was kicked")
			}
			if tt.result != "" {
				if n := testutil.ToFloat64(m.events.WithLabelValues(tt.result)); n != 1 {
					t.Errorf("notifications counted %s: %v, want 1", tt.result, n)
				}
			}
		})
	}
}

func TestParseS3Event(t *testing.T) {
	t.Parallel()
	got, err := ParseS3Event([]byte(readFile(t, "testdata/versitygw-put.json")))
	want := []Notified{{Bucket: "exports", Key: "area/ds/nested/dir/b c+d.bin"}}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("ParseS3Event(versitygw's put) = %v, %v; want %v", got, err, want)
	}
}

// FuzzS3Event: any body is parsed or refused without a panic, and what is
// parsed is what a notification of those objects parses to again.
func FuzzS3Event(f *testing.F) {
	for _, name := range []string{"testdata/versitygw-put.json", "testdata/versitygw-test-event.json"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(notification(Notified{"exports", "my+ds/a%2Bb.bin"}, Notified{"", "x"})))
	f.Add([]byte(`{"Records":[{"s3":{"bucket":{"name":"b"}}}]} `))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := ParseS3Event(body)
		if err != nil {
			return
		}
		for _, o := range got {
			if o.Key == "" {
				t.Fatalf("parsed an object without a key from %q", body)
			}
			if !(scope{bucket: o.Bucket, prefix: o.Key}).covers(o) {
				t.Fatalf("the scope of exactly %+v does not cover it", o)
			}
		}
		again, err := ParseS3Event([]byte(notification(got...)))
		if err != nil || !slices.Equal(again, got) {
			t.Fatalf("%q parsed to %v, whose notification parses to %v, %v", body, got, again, err)
		}
	})
}
