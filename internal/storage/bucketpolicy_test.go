package storage

import (
	"strings"
	"testing"
)

func TestParseBucket(t *testing.T) {
	t.Parallel()
	tests := []struct {
		location string
		want     BucketRef
		ok       bool
	}{
		{"s3://mojap-land/acme?region=eu-west-2&endpoint=http://127.0.0.1:7070", BucketRef{"s3", "mojap-land", "acme/"}, true},
		{"s3://target?region=eu-west-2", BucketRef{"s3", "target", ""}, true},
		{"s3://target/a/b/?prefix=x-", BucketRef{"s3", "target", "a/b/x-"}, true},
		{"gs://bucket/in", BucketRef{"gs", "bucket", "in/"}, true},
		{"/var/lib/airlock/out", BucketRef{}, false},
		{"mem://", BucketRef{}, false},
	}
	for _, tt := range tests {
		got, ok, err := ParseBucket(tt.location)
		if err != nil || ok != tt.ok || got != tt.want {
			t.Errorf("ParseBucket(%q) = %+v, %v, %v; want %+v, %v", tt.location, got, ok, err, tt.want, tt.ok)
		}
	}
	if _, _, err := ParseBucket("s3:///acme"); err == nil {
		t.Error("a bucket URL without a bucket parsed")
	}
}

func TestPutBucketPolicyOnlyS3(t *testing.T) {
	t.Parallel()
	for _, loc := range []string{t.TempDir(), "gs://bucket/x"} {
		if err := PutBucketPolicy(t.Context(), loc, []byte("{}")); err == nil || !strings.Contains(err.Error(), "is not an s3:// bucket") {
			t.Errorf("PutBucketPolicy(%q) = %v", loc, err)
		}
	}
}
