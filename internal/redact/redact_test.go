package redact

import "testing"

func TestURL(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want string }{
		{"s3://bucket/prefix?region=eu-west-2&endpoint=http://127.0.0.1:9000", "s3://bucket/prefix?region=eu-west-2&endpoint=http://127.0.0.1:9000"},
		{"postgres://u:secret@db/airlock", "postgres://db/airlock"},
		{"https://user:pw@hooks.example.org:8443/a/b?token=x#frag", "https://hooks.example.org:8443/a/b"},
		{"azblob://c?sv=2020&sig=abc&se=2030", "azblob://c?se=2030&sv=2020"},
		{"https://h/p?X-Amz-Signature=abc&X-Amz-Credential=def&a=1", "https://h/p?a=1"},
		{"state/landing", "state/landing"},
		{"://%zz", "(a URL that does not parse)"},
	} {
		if got := URL(tt.in); got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
