package notify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
)

// NoticeLedger records which notices have gone out; *ledger.Ledger is one.
type NoticeLedger interface {
	NoticeSent(ctx context.Context, id string) (bool, error)
	RecordNotice(ctx context.Context, id string, ev ledger.Event) (first bool, err error)
}

// Sender sends one email; *Mailer is one.
type Sender interface {
	Send(ctx context.Context, msg Message) error
}

// DefaultInterval is how often KeyExpiryNotifier checks when Interval is 0.
const DefaultInterval = time.Hour

// KeyExpiryNotifier emails a supplier, copying the operators, when one of
// its SSH keys will expire within Lead: one email per supplier, key and
// expiry date, however often it checks and on however many nodes (the
// ledger remembers what was sent).
type KeyExpiryNotifier struct {
	Suppliers func() *config.Suppliers // the set in effect, e.g. Reloader.Current
	Ledger    NoticeLedger
	// Mailer sends the emails. When nil (no SMTP configured) each notice
	// is logged as a warning instead, once per process, and not recorded,
	// so that it is emailed once SMTP is set up.
	Mailer    Sender
	Operators []string      // copied on every notice
	Lead      time.Duration // how long before expiry to tell; 0 disables notices
	Interval  time.Duration // between checks; 0 means DefaultInterval
	Now       func() time.Time
	Log       *slog.Logger

	mu     sync.Mutex
	logged map[string]bool // notices logged for want of a Mailer
}

// Run checks at once and then every Interval until ctx is done. A failed
// check is logged and retried at the next; Run returns an error only when
// the notifier is not set up.
func (n *KeyExpiryNotifier) Run(ctx context.Context) error {
	if n.Suppliers == nil || n.Ledger == nil {
		return errors.New("key expiry notifier: Suppliers and Ledger are required")
	}
	log := n.log()
	if n.Lead <= 0 {
		log.Info("key expiry notices are disabled (notify.key_expiry_notice is 0)")
		return nil
	}
	if n.mailer() == nil {
		log.Warn("no SMTP server configured (notify.smtp): key expiry notices will only be logged")
	}
	ticker := time.NewTicker(cmp.Or(n.Interval, DefaultInterval))
	defer ticker.Stop()
	for {
		if err := n.CheckOnce(ctx); err != nil && ctx.Err() == nil {
			log.Error("key expiry check failed; retrying at the next check", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// CheckOnce sends the notices due now: for every key that expires within
// Lead and has not expired yet, unless its notice was sent before. It
// tries every key and returns the errors of those it could not notify.
func (n *KeyExpiryNotifier) CheckOnce(ctx context.Context) error {
	if n.Lead <= 0 {
		return nil
	}
	now := time.Now()
	if n.Now != nil {
		now = n.Now()
	}
	var errs []error
	for _, s := range n.Suppliers().All() {
		for _, k := range s.SSHKeys {
			if k.Expires.IsZero() || k.ExpiredAt(now) || k.Expires.Sub(now) > n.Lead {
				continue
			}
			if err := n.notify(ctx, s, k, now); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// noticeID names the notice about one key expiring on one date; a key
// given a new expiry date gets a new notice.
func noticeID(s *config.Supplier, k config.AuthorizedKey) string {
	return "key-expiry:" + s.Name + ":" + k.Fingerprint + ":" + k.ExpiryDate()
}

func (n *KeyExpiryNotifier) notify(ctx context.Context, s *config.Supplier, k config.AuthorizedKey, now time.Time) error {
	id := noticeID(s, k)
	log := n.log().With("supplier", s.Name, "fingerprint", k.Fingerprint, "expires", k.Expires.Format(time.RFC3339))
	sent, err := n.Ledger.NoticeSent(ctx, id)
	if err != nil {
		return err
	}
	if sent {
		return nil
	}
	msg := expiryMessage(s, k, n.Operators, now)
	mailer := n.mailer()
	if mailer == nil {
		if n.firstLog(id) {
			log.Warn("SSH key expires soon; no SMTP server is configured to tell the supplier", "email", s.Email)
		}
		return nil
	}
	// Send first, then record: a crash (or a failed write) between the
	// two sends the notice again at the next check, which is better than
	// recording a notice that never went out. Two nodes checking at the
	// same moment may likewise both send it; the ledger keeps one record.
	if err := mailer.Send(ctx, msg); err != nil {
		return fmt.Errorf("key expiry notice to %s for %s: %w", s.Name, k.Fingerprint, err)
	}
	first, err := n.Ledger.RecordNotice(ctx, id, ledger.Event{
		Kind:  "key.expiry_notice",
		Actor: "system",
		Detail: map[string]string{
			"supplier":    s.Name,
			"fingerprint": k.Fingerprint,
			"expires":     k.Expires.UTC().Format(time.RFC3339),
			"to":          strings.Join(append(append([]string{}, msg.To...), msg.Cc...), ", "),
		},
	})
	if err != nil {
		return fmt.Errorf("key expiry notice to %s for %s was sent but not recorded (it will be sent again): %w", s.Name, k.Fingerprint, err)
	}
	if first {
		log.Info("key expiry notice sent", "email", s.Email)
	} else {
		log.Info("key expiry notice sent, but another node had already sent it")
	}
	return nil
}

// mailer returns n.Mailer, or nil for a nil *Mailer stored in it.
func (n *KeyExpiryNotifier) mailer() Sender {
	if m, ok := n.Mailer.(*Mailer); ok && m == nil {
		return nil
	}
	return n.Mailer
}

// firstLog reports whether the notice id has not been logged before.
func (n *KeyExpiryNotifier) firstLog(id string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.logged[id] {
		return false
	}
	if n.logged == nil {
		n.logged = map[string]bool{}
	}
	n.logged[id] = true
	return true
}

func (n *KeyExpiryNotifier) log() *slog.Logger {
	if n.Log != nil {
		return n.Log
	}
	return slog.Default()
}

// expiryMessage is the email about key k of supplier s.
func expiryMessage(s *config.Supplier, k config.AuthorizedKey, operators []string, now time.Time) Message {
	date := k.ExpiryDate()
	key := k.Type + " " + k.Fingerprint
	if k.Comment != "" {
		key += " (" + k.Comment + ")"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Hello,\n\n")
	fmt.Fprintf(&b, "An SSH key that %s uses to send data through airlock expires\n", s.Name)
	fmt.Fprintf(&b, "on %s, in %s: from %s it will be refused.\n\n",
		date, days(config.DaysLeft(k.Expires, now)), k.Expires.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "    supplier: %s\n", s.Name)
	fmt.Fprintf(&b, "    key:      %s\n\n", key)
	fmt.Fprintf(&b, "To keep access, create a new key pair (for example with\n")
	fmt.Fprintf(&b, "`ssh-keygen -t ed25519`) and send the public key (the .pub file, never\n")
	fmt.Fprintf(&b, "the private key) to the airlock operators, so that it can be added\n")
	fmt.Fprintf(&b, "before this one expires.\n\n")
	fmt.Fprintf(&b, "This is an automatic message from airlock, sent once for this key and\n")
	fmt.Fprintf(&b, "expiry date.\n")
	return Message{
		To:      []string{s.Email},
		Cc:      operators,
		Subject: fmt.Sprintf("airlock: SSH key %s for %s expires on %s", k.Fingerprint, s.Name, date),
		Body:    b.String(),
	}
}

func days(n int) string {
	if n == 1 {
		return "1 day"
	}
	return fmt.Sprintf("%d days", n)
}
