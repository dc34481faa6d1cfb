package storage

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/airlock-gw/airlock/internal/redact"
)

// target is what a location names: what to hand the driver, and what a
// server-side copy needs to address objects by their real bucket and key.
type target struct {
	open   string     // the path or URL the driver opens
	scheme string     // "" for a local directory
	name   string     // object stores: the bucket name
	prefix string     // object stores: the key prefix inside the bucket
	query  url.Values // object stores: the driver's parameters, without prefix=
	shown  string     // the location without credentials, for logs
}

// objectStores are the schemes whose URL path is a key prefix inside the
// bucket (s3://bucket/acme); gocloud itself ignores that path.
var objectStores = map[string]bool{"s3": true, "gs": true, "azblob": true}

func parseLocation(location string) (target, error) {
	if !IsURL(location) {
		return target{open: location, shown: location}, nil
	}
	u, err := url.Parse(location)
	if err != nil {
		return target{}, err
	}
	// Strictly, unlike url.URL.Query: a malformed pair dropped silently
	// could be a secret that String would then print.
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return target{}, err
	}
	t := target{open: location, scheme: u.Scheme, shown: redact.URL(location)}
	if !objectStores[u.Scheme] {
		return t, nil
	}
	if u.Host == "" {
		return target{}, fmt.Errorf("%s has no bucket: write %s://<bucket>/<prefix>", t.shown, u.Scheme)
	}
	if q.Has("key") {
		// A single-object bucket cannot hold landing or delivered files.
		return target{}, errors.New("key= is not supported")
	}
	t.name, t.prefix, t.query = u.Host, joinPrefix(u.Path, q.Get("prefix")), q
	q.Del("prefix")
	t.open = (&url.URL{Scheme: u.Scheme, Host: u.Host, RawQuery: q.Encode()}).String()
	return t, nil
}

// joinPrefix makes the URL path a directory of the bucket and puts
// gocloud's prefix= inside it, taken verbatim as gocloud does.
func joinPrefix(path, param string) string {
	dir := strings.Trim(path, "/")
	if dir != "" {
		dir += "/"
	}
	return dir + param
}

// String returns the location without credentials or secrets, for logs
// and the ledger.
func (s *Store) String() string { return s.shown }
