package integration

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-gw/airlock/internal/testpeer"
)

// s3Server is a versitygw S3 gateway (see testpeer.Versity) that gives
// suppliers their destinations.
type s3Server struct{ *testpeer.Versity }

func startVersity(t *testing.T, buckets ...string) *s3Server {
	t.Helper()
	return &s3Server{testpeer.StartVersity(t, buckets...)}
}

// url is the gocloud URL of bucket.
func (s *s3Server) url(bucket string) string {
	return fmt.Sprintf("s3://%s?endpoint=http://%s&use_path_style=true&region=us-east-1", bucket, s.Addr)
}

// dest is a supplier destination under prefix in bucket.
func (s *s3Server) dest(bucket, prefix string) destination {
	return s.destVia(s.Addr, bucket, prefix)
}

// destVia is dest reached through endpoint, a proxy in front of s.
func (s *s3Server) destVia(endpoint, bucket, prefix string) destination {
	return destination{
		url: testpeer.S3URL(endpoint, bucket, prefix),
		dir: filepath.Join(s.Root, bucket, filepath.FromSlash(prefix)),
	}
}

// objects returns the sha256 of every object below dir (a bucket
// directory or a prefix in it), by key relative to dir. versitygw keeps
// uploads in progress under .sgwtmp, which holds no object.
func objects(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := make(map[string]string)
	for _, p := range landedFiles(t, dir) {
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(rel, ".sgwtmp") {
			continue
		}
		out[filepath.ToSlash(rel)] = fileSHA256(t, p)
	}
	return out
}
