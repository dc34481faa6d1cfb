package storage

import (
	"net/url"
	"testing"

	"github.com/airlock-gw/airlock/internal/redact"
)

func TestParseLocation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in                 string
		open, name, prefix string
	}{
		{
			in:   "s3://mojap-land/acme?region=eu-west-2&endpoint=http://127.0.0.1:7070",
			open: "s3://mojap-land?endpoint=http%3A%2F%2F127.0.0.1%3A7070&region=eu-west-2",
			name: "mojap-land", prefix: "acme/",
		},
		{in: "s3://land/acme/2026/?region=eu-west-2", open: "s3://land?region=eu-west-2", name: "land", prefix: "acme/2026/"},
		{in: "s3://land?region=eu-west-2", open: "s3://land?region=eu-west-2", name: "land"},
		// gocloud's prefix= keeps working, inside the path's directory.
		{in: "s3://land?prefix=in/", open: "s3://land", name: "land", prefix: "in/"},
		{in: "s3://land/acme?prefix=in-", open: "s3://land", name: "land", prefix: "acme/in-"},
		{in: "gs://land/acme", open: "gs://land", name: "land", prefix: "acme/"},
		{in: "azblob://land/acme?storage_account=a", open: "azblob://land?storage_account=a", name: "land", prefix: "acme/"},
		// Credentials in the URL are no business of the driver's.
		{in: "s3://user:pw@land/acme", open: "s3://land", name: "land", prefix: "acme/"},
		// mem:// and file:// keep gocloud's meaning.
		{in: "mem://", open: "mem://"},
		{in: "file:///var/lib/airlock/landing", open: "file:///var/lib/airlock/landing"},
		{in: "state/landing", open: "state/landing"},
	}
	for _, tt := range tests {
		got, err := parseLocation(tt.in)
		if err != nil {
			t.Errorf("parseLocation(%q): %v", tt.in, err)
			continue
		}
		if got.open != tt.open || got.name != tt.name || got.prefix != tt.prefix {
			t.Errorf("parseLocation(%q) = open %q, bucket %q, prefix %q; want %q, %q, %q",
				tt.in, got.open, got.name, got.prefix, tt.open, tt.name, tt.prefix)
		}
	}
	for _, bad := range []string{"s3://land?key=one.csv", "s3://land?region=%zz", "s3:///acme", "s3:///?0"} {
		if _, err := parseLocation(bad); err == nil {
			t.Errorf("parseLocation(%q) succeeded", bad)
		}
	}
}

func TestString(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"s3://land/acme?region=eu-west-2&endpoint=http://s3", "s3://land/acme?region=eu-west-2&endpoint=http://s3"},
		{"s3://key:secret@land/acme?region=eu-west-2", "s3://land/acme?region=eu-west-2"},
		{"azblob://land/acme?storage_account=a&sig=abc&sv=2024", "azblob://land/acme?storage_account=a&sv=2024"},
		{"s3://land?X-Amz-Credential=a&X-Amz-Security-Token=b&X-Amz-Signature=c&region=r", "s3://land?region=r"},
		{"mem://", "mem://"},
		{"state/landing", "state/landing"},
	}
	for _, tt := range tests {
		tg, err := parseLocation(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := (&Store{target: tg}).String(); got != tt.want {
			t.Errorf("String of %q = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func assertRedacted(t *testing.T, shown string) {
	t.Helper()
	u, err := url.Parse(shown)
	if err != nil {
		t.Fatalf("String() = %q does not parse: %v", shown, err)
	}
	if u.User != nil {
		t.Fatalf("String() = %q shows userinfo", shown)
	}
	for k := range u.Query() {
		if redact.SecretParam(k) {
			t.Fatalf("String() = %q shows %s", shown, k)
		}
	}
}

// FuzzParseLocation checks what Open and the server-side copy rely on: the
// URL opened has neither path nor prefix=, so it names the bucket alone and
// says how to connect to it; String shows no credentials and, re-opened,
// names the same objects.
func FuzzParseLocation(f *testing.F) {
	for _, s := range []string{
		"s3://mojap-land/acme?region=eu-west-2&endpoint=http://127.0.0.1:7070",
		"s3://u:p@land//a/b/?prefix=x&sig=1",
		"gs://land/acme?prefix=in/",
		"azblob://land?key=k",
		"mem://", "file:///tmp/x", "state/landing", "s3://land/%2F?a=%zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := parseLocation(s)
		if err != nil {
			return
		}
		if IsURL(s) {
			assertRedacted(t, tg.shown)
		}
		if !objectStores[tg.scheme] {
			return
		}
		opened, err := parseLocation(tg.open)
		if err != nil {
			t.Fatalf("open URL %q does not parse: %v", tg.open, err)
		}
		if opened.name != tg.name || opened.prefix != "" || opened.query.Encode() != tg.query.Encode() {
			t.Fatalf("open URL %q names bucket %q prefix %q query %v; want %q, \"\", %v",
				tg.open, opened.name, opened.prefix, opened.query, tg.name, tg.query)
		}
		if again, err := parseLocation(tg.shown); err != nil || again.name != tg.name || again.prefix != tg.prefix {
			t.Fatalf("String() = %q re-opens as %+v, %v; want bucket %q prefix %q", tg.shown, again, err, tg.name, tg.prefix)
		}
	})
}
