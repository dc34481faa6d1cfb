package watch

import (
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sync"
)

// MaxNotification is the largest notification body a Webhook reads.
const MaxNotification = 1 << 20

// WebhookOptions tune a Webhook.
type WebhookOptions struct {
	// Token, when set, is the shared secret a sender must present as
	// "Authorization: Bearer <Token>" (MinIO's notify_webhook auth_token).
	// versitygw sends no token: leave it empty and listen where only the
	// gateway reaches.
	Token string
	// Pollers are more pollers to kick, which come and go while the
	// Webhook serves (a route's poller of the day); nil: none.
	Pollers *Pollers
	Metrics *Metrics
	Log     *slog.Logger
}

// Pollers is a set of Pollers that changes: a Webhook kicks those in it
// when a notification arrives. It is safe for concurrent use.
type Pollers struct {
	mu  sync.Mutex
	set map[*Poller]struct{}
}

// Add puts p in the set until remove is called.
func (s *Pollers) Add(p *Poller) (remove func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.set == nil {
		s.set = map[*Poller]struct{}{}
	}
	s.set[p] = struct{}{}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.set, p)
	}
}

// all returns the Pollers in the set now; nil has none.
func (s *Pollers) all() []*Poller {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Keys(s.set))
}

// Webhook returns the endpoint S3 bucket notifications are POSTed to: it
// kicks each of pollers (and of opts.Pollers) whose bucket and prefix a
// notification names.
func Webhook(opts WebhookOptions, pollers ...*Poller) http.Handler {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &webhook{opts: opts, pollers: pollers}
}

type webhook struct {
	opts    WebhookOptions
	pollers []*Poller
}

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "bucket notifications are POSTed", http.StatusMethodNotAllowed)
		return
	}
	if !h.authorized(r) {
		h.opts.Metrics.event("unauthorized")
		w.Header().Set("WWW-Authenticate", `Bearer realm="airlock bucket notifications"`)
		http.Error(w, "a valid bearer token is required", http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxNotification))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		h.opts.Metrics.event("invalid")
		http.Error(w, "the notification is larger than 1 MiB", http.StatusRequestEntityTooLarge)
		return
	}
	if err != nil {
		return // the sender went away
	}
	objects, err := ParseS3Event(body)
	if err != nil {
		h.opts.Metrics.event("invalid")
		h.opts.Log.Warn("bucket notification refused", "remote_ip", r.RemoteAddr, "err", err)
		http.Error(w, err.Error()+` (want {"Records":[{"s3":{"bucket":{"name":…},"object":{"key":…}}}]})`, http.StatusBadRequest)
		return
	}
	h.opts.Metrics.event("accepted")
	for _, p := range slices.Concat(h.pollers, h.opts.Pollers.all()) {
		for _, o := range objects {
			if p.scope.covers(o) {
				p.Kick()
				break
			}
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *webhook) authorized(r *http.Request) bool {
	if h.opts.Token == "" {
		return true
	}
	got := r.Header.Get("Authorization")
	want := "Bearer " + h.opts.Token
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
