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
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/redact"
)

// ErrPermanent marks a webhook failure that sending again will not fix,
// such as a 4xx answer other than 408 or 429: callers stop retrying.
var ErrPermanent = errors.New("permanent webhook failure")

// DefaultWebhookTimeout bounds one Send when NewWebhook is given a client
// without a Timeout.
const DefaultWebhookTimeout = 10 * time.Second

// signaturePrefix starts the X-Airlock-Signature-256 header, as GitHub's
// X-Hub-Signature-256 does, so that receivers can reuse their code.
const signaturePrefix = "sha256="

// errBodyLimit is how much of a failed response's body an error quotes.
const errBodyLimit = 200

// Webhook posts transfer outcomes as signed JSON to one HTTP endpoint. It
// is safe for concurrent use.
type Webhook struct {
	url    string
	target string // url without userinfo, query or fragment, for messages
	secret []byte
	client *http.Client
}

// NewWebhook returns a Webhook that posts to rawURL, which must be https,
// or http to a loopback host only (as tls: none is for SMTP). The HMAC
// secret is read from the environment variable secretEnv through getenv
// (os.Getenv when nil); it must be set and not empty, so that a missing
// secret shows at start. A nil client means one with a 10 s timeout and
// TLS 1.2 or later; a given client is used as it is, with DefaultWebhookTimeout
// if it has no Timeout. Either way redirects are never followed: see Send.
func NewWebhook(rawURL, secretEnv string, getenv func(string) string, client *http.Client) (*Webhook, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error quotes the whole URL, password included.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("webhook: url: %w", err)
	}
	w := &Webhook{url: rawURL, target: redact.Parsed(u)}
	switch {
	case u.Host == "":
		return nil, fmt.Errorf("webhook %s: url has no host", w.target)
	case u.Scheme == "https":
	case u.Scheme == "http":
		if !config.IsLoopback(u.Hostname()) {
			return nil, fmt.Errorf("webhook %s: http is allowed only for a loopback address, not %q; use https", w.target, u.Hostname())
		}
	default:
		return nil, fmt.Errorf("webhook %s: url scheme %q: want https (or http to a loopback address)", w.target, u.Scheme)
	}
	if secretEnv == "" {
		return nil, fmt.Errorf("webhook %s: no secret environment variable is named", w.target)
	}
	if w.secret = []byte(getenv(secretEnv)); len(w.secret) == 0 {
		return nil, fmt.Errorf("webhook %s: the secret environment variable %s is not set or empty", w.target, secretEnv)
	}
	if client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		client = &http.Client{Transport: t}
	}
	// A copy, so that the caller's client keeps its own behaviour.
	c := *client
	if c.Timeout == 0 {
		c.Timeout = DefaultWebhookTimeout
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	w.client = &c
	return w, nil
}

// Target returns the URL without userinfo, query or fragment, which may
// hold credentials: safe to log.
func (w *Webhook) Target() string { return w.target }

// WebhookBody is the JSON body of a webhook request, for receivers written
// in Go (and airlock's own tests).
type WebhookBody struct {
	Event      string          `json:"event"`
	DeliveryID string          `json:"delivery_id"`
	SentAt     time.Time       `json:"sent_at"`
	Transfer   WebhookTransfer `json:"transfer"`
}

// WebhookTransfer is the transfer a webhook request tells of.
type WebhookTransfer struct {
	ID          string    `json:"id"`
	Supplier    string    `json:"supplier"`
	Path        string    `json:"path"`
	Size        int64     `json:"size"`
	SHA256      string    `json:"sha256"`
	ScanResult  string    `json:"scan_result"`
	Destination string    `json:"destination"`
	Error       string    `json:"error"`
	At          time.Time `json:"at"`
}

// Send posts o once; retrying is the caller's (durable) job. deliveryID
// must be the same on every attempt for one outcome, so that receivers
// can drop duplicates. Any answer but 2xx is an error quoting the status
// and the start of the body; it wraps ErrPermanent for a 4xx other than
// 408 and 429. Network errors and 5xx are plain errors, worth a retry.
//
// Redirects are not followed at all, to any host: Go would turn a 301,
// 302 or 303 into a GET without the body, so the receiver would answer 2xx
// without ever getting the event, and a 307 or 308 would post the signed
// body to a URL nobody configured. A 3xx is therefore a (retryable) error
// naming the location, for an operator to put in the configuration.
func (w *Webhook) Send(ctx context.Context, deliveryID string, o Outcome) error {
	return w.post(ctx, deliveryID, o.Event, WebhookBody{
		Event:      o.Event,
		DeliveryID: deliveryID,
		SentAt:     time.Now().UTC(),
		Transfer: WebhookTransfer{
			ID:          o.TransferID,
			Supplier:    o.Supplier,
			Path:        o.Path,
			Size:        o.Size,
			SHA256:      o.SHA256,
			ScanResult:  o.ScanResult,
			Destination: o.Destination,
			Error:       o.Error,
			At:          o.At.UTC(),
		},
	})
}

// WebhookBatchBody is the JSON body of a batch event.
type WebhookBatchBody struct {
	Event      string       `json:"event"`
	DeliveryID string       `json:"delivery_id"`
	SentAt     time.Time    `json:"sent_at"`
	Batch      WebhookBatch `json:"batch"`
}

// WebhookBatch is the batch a webhook request tells of.
type WebhookBatch struct {
	ID        string         `json:"id"`
	Route     string         `json:"route"`
	Recipient string         `json:"recipient"`
	Trigger   string         `json:"trigger"`
	Reruns    string         `json:"reruns,omitempty"`
	Files     int            `json:"files"`
	Delivered int            `json:"delivered"`
	Bytes     int64          `json:"bytes"`
	Manifest  string         `json:"manifest,omitempty"`
	Failures  []BatchFailure `json:"failures"`
	At        time.Time      `json:"at"`
}

// SendBatch posts b once, as Send posts an Outcome.
func (w *Webhook) SendBatch(ctx context.Context, deliveryID string, b BatchOutcome) error {
	failures := b.Failures
	if failures == nil {
		failures = []BatchFailure{}
	}
	return w.post(ctx, deliveryID, b.Event, WebhookBatchBody{
		Event:      b.Event,
		DeliveryID: deliveryID,
		SentAt:     time.Now().UTC(),
		Batch: WebhookBatch{ID: b.Batch, Route: b.Route, Recipient: b.Recipient, Trigger: b.Trigger, Reruns: b.Reruns,
			Files: b.Files, Delivered: b.Delivered, Bytes: b.Bytes, Manifest: b.Manifest, Failures: failures, At: b.At.UTC()},
	})
}

// post sends payload, signed, as the event; see Send.
func (w *Webhook) post(ctx context.Context, deliveryID, event string, payload any) error {
	if !headerSafe(deliveryID) || !headerSafe(event) {
		return fmt.Errorf("webhook %s: event %q and delivery id %q must be non-empty and free of control characters: %w",
			w.target, event, deliveryID, ErrPermanent)
	}
	body, err := json.Marshal(payload)
	if err != nil {
		// Only a time outside years 0–9999 fails here, on every attempt.
		return fmt.Errorf("webhook %s: encode: %w (%w)", w.target, err, ErrPermanent)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook %s: %w", w.target, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "airlock")
	req.Header.Set("X-Airlock-Event", event)
	req.Header.Set("X-Airlock-Delivery", deliveryID)
	req.Header.Set("X-Airlock-Signature-256", sign(w.secret, body))
	resp, err := w.client.Do(req)
	if err != nil {
		// url.Error repeats the URL, query included; target says where.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("webhook %s: %w", w.target, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// Reading a short answer to its end lets the connection be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, errBodyLimit))
	msg := fmt.Sprintf("%s: %q", resp.Status, snippet)
	if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode >= 300 && resp.StatusCode < 400 {
		if lu, err := req.URL.Parse(loc); err == nil {
			msg += " (redirect to " + redact.Parsed(lu) + " not followed)"
		}
	}
	if resp.StatusCode >= 400 && resp.StatusCode < 500 &&
		resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
		return fmt.Errorf("webhook %s: %s: %w", w.target, msg, ErrPermanent)
	}
	return fmt.Errorf("webhook %s: %s", w.target, msg)
}

// headerSafe reports whether s can go in a header as it is.
func headerSafe(s string) bool {
	return s != "" && !strings.ContainsFunc(s, unicode.IsControl)
}

// sign returns the signature header value for body.
func sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return signaturePrefix + hex.EncodeToString(mac.Sum(nil))
}

// VerifySignature reports whether header is the X-Airlock-Signature-256
// value for body under secret, comparing in constant time. An empty secret
// verifies nothing: anyone could sign with it.
func VerifySignature(secret, body []byte, header string) bool {
	return len(secret) > 0 && hmac.Equal([]byte(header), []byte(sign(secret, body)))
}
