package config

import (
	"net"
	"strings"
	"time"
	"unicode"
)

// Notify configures notifications.
type Notify struct {
	SMTP      *SMTP    // nil: no email is sent
	Operators []string // bare addresses copied on notifications
	// KeyExpiryNotice is how long before an SSH key expires its supplier is
	// told; 0 disables the notices.
	KeyExpiryNotice time.Duration
	Webhook         *Webhook // nil: no webhook is called
}

// Webhook is an HTTPS endpoint told about every outcome, in requests signed
// with HMAC-SHA256.
type Webhook struct {
	URL       string // https, or http to a loopback host
	SecretEnv string // name of the environment variable holding the HMAC key
}

// SMTP is the mail server notifications are sent through.
type SMTP struct {
	Addr        string // host:port
	From        string // one address, as written (a display name is allowed)
	Username    string // "" for no authentication
	PasswordEnv string // name of the environment variable holding the password
	TLS         string // "starttls", "implicit" or "none" (loopback addresses only)
}

// The values of SMTP.TLS.
const (
	TLSStartTLS = "starttls"
	TLSImplicit = "implicit"
	TLSNone     = "none"
)

// parseNotify reads the notify section.
func parseNotify(c *checker, notify map[string]field) Notify {
	var n Notify
	if f := notify["smtp"]; f.present() {
		n.SMTP = parseSMTP(c, f)
	}
	if items, _ := c.list(notify["operators"]); items != nil {
		n.Operators = []string{}
		for _, it := range items {
			a, err := parseEmail(it.val)
			if err != nil {
				c.errorf(it.line, "%s: %v", it.path, err)
				continue
			}
			n.Operators = append(n.Operators, a)
		}
	}
	n.KeyExpiryNotice = c.duration(notify["key_expiry_notice"], defaultKeyExpiryNotice, true)
	if f := notify["webhook"]; f.present() {
		n.Webhook = parseWebhook(c, f)
	}
	return n
}

func parseSMTP(c *checker, f field) *SMTP {
	m := c.mapping(f, airlockKeys["notify"]["smtp"])
	if m == nil {
		return nil
	}
	s := &SMTP{}
	var host string
	if addr, ok := c.required(f, m, "addr"); ok {
		if err := checkHostPort(addr, true); err != nil {
			c.errorf(valLine(m["addr"]), "%s: %v", m["addr"].path, err)
		} else {
			s.Addr = addr
			host, _, _ = net.SplitHostPort(addr)
		}
	}
	if from, ok := c.required(f, m, "from"); ok {
		if _, err := parseEmail(from); err != nil {
			c.errorf(valLine(m["from"]), "%s: %v", m["from"].path, err)
		} else {
			s.From = from
		}
	}
	s.Username, _ = c.str(m["username"])
	if strings.ContainsFunc(s.Username, unicode.IsControl) {
		c.errorf(valLine(m["username"]), "%s must not contain control characters", m["username"].path)
	}
	s.PasswordEnv, _ = c.str(m["password_env"])
	switch err := checkEnvName(s.PasswordEnv); {
	case s.PasswordEnv != "" && err != nil:
		c.errorf(valLine(m["password_env"]), "%s: %v", m["password_env"].path, err)
	case s.Username != "" && s.PasswordEnv == "":
		c.errorf(valLine(m["username"]), "%s is set but password_env is not: name the environment variable that holds the password", m["username"].path)
	case s.Username == "" && s.PasswordEnv != "":
		c.errorf(valLine(m["password_env"]), "%s is set but username is not", m["password_env"].path)
	}
	s.TLS = c.oneOf(m["tls"], TLSStartTLS, TLSStartTLS, TLSImplicit, TLSNone)
	// An empty host means addr is missing or broken, already reported.
	if s.TLS == TLSNone && host != "" {
		c.inClear(m["tls"], s.TLS, "mail and the SMTP password", "addr", host)
	}
	return s
}

func parseWebhook(c *checker, f field) *Webhook {
	m := c.mapping(f, airlockKeys["notify"]["webhook"])
	if m == nil {
		return nil
	}
	w := &Webhook{}
	if raw, ok := c.required(f, m, "url"); ok {
		if u, err := parseWebhookURL(raw); err != nil {
			c.errorf(valLine(m["url"]), "%s: %v", m["url"].path, err)
		} else {
			w.URL = raw
			if u.Scheme == "http" {
				c.inClear(m["url"], raw, "events", "the URL's host", u.Hostname())
			}
		}
	}
	if env, ok := c.required(f, m, "secret_env"); ok {
		if err := checkEnvName(env); err != nil {
			c.errorf(valLine(m["secret_env"]), "%s: %v", m["secret_env"].path, err)
		} else {
			w.SecretEnv = env
		}
	}
	return w
}

// inClear checks f, written as val, which makes airlock send what
// unencrypted to host: that is an error unless host is this machine, where
// no one else can read the traffic, and a warning even then.
func (c *checker) inClear(f field, val, what, hostKey, host string) {
	if !IsLoopback(host) {
		c.errorf(valLine(f), "%s: %q sends %s in clear; it is allowed only when %s is a loopback address (localhost, 127.0.0.1, ::1), not %q", f.path, val, what, hostKey, host)
		return
	}
	c.warnf(valLine(f), "%s: %q sends %s in clear (allowed because %s is a loopback address)", f.path, val, what, host)
}
