package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// s3Server is a versitygw S3 gateway over a posix directory: each
// sub-directory of root is a bucket, each file an object.
type s3Server struct {
	addr   string
	root   string
	access string
	secret string
}

func startVersity(t *testing.T, buckets ...string) *s3Server {
	t.Helper()
	bin := requireTool(t, "versitygw")
	s := &s3Server{addr: freeAddr(t), root: t.TempDir(), access: "itestaccess", secret: "itestsecret0123456789"}
	for _, b := range buckets {
		if err := os.MkdirAll(filepath.Join(s.root, b), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "--access", s.access, "--secret", s.secret, "--port", s.addr, "posix", s.root)
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("versitygw log:\n%s", log.String())
		}
	})
	waitTCP(t, s.addr, exited)
	return s
}

// url is the gocloud URL of bucket.
func (s *s3Server) url(bucket string) string {
	return fmt.Sprintf("s3://%s?endpoint=http://%s&use_path_style=true&region=us-east-1", bucket, s.addr)
}

// env gives a process the credentials of the gateway's root user.
func (s *s3Server) env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.access,
		"AWS_SECRET_ACCESS_KEY=" + s.secret,
		"AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true",
	}
}
