package testpeer

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// LocalKMS is local-kms, the AWS KMS emulator. It can only listen on all
// interfaces: it is started on port 0 (a port the kernel picks, no race
// with another test) and talked to on 127.0.0.1.
type LocalKMS struct {
	Endpoint string // http://127.0.0.1:PORT
	Region   string
}

// The credentials every test client signs with; local-kms checks none.
const (
	kmsAccess = "testaccess"
	kmsSecret = "testsecret0123456789"
)

var kmsStarted = regexp.MustCompile(`Local KMS started on [^ ]*:(\d+)`)

// StartLocalKMS starts local-kms with an empty database in a temporary
// directory and waits until it listens. It is killed when the test ends,
// and its output logged if the test failed.
func StartLocalKMS(tb testing.TB) *LocalKMS {
	tb.Helper()
	bin := Require(tb, "local-kms")
	k := &LocalKMS{Region: "us-east-1"}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "PORT=0", "KMS_REGION="+k.Region, "KMS_ACCOUNT_ID=111122223333",
		"KMS_DATA_PATH="+filepath.Join(tb.TempDir(), "kms"))
	logPath := filepath.Join(tb.TempDir(), "local-kms.log")
	out, err := os.Create(logPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	proc := Start(tb, cmd)
	tb.Cleanup(func() {
		proc.Kill()
		if tb.Failed() {
			log, _ := os.ReadFile(logPath)
			tb.Logf("local-kms log:\n%s", log)
		}
	})
	// With PORT=0 the port is known only from the log line.
	deadline := time.Now().Add(30 * time.Second)
	for {
		log, _ := os.ReadFile(logPath)
		if m := kmsStarted.FindSubmatch(log); m != nil {
			k.Endpoint = "http://127.0.0.1:" + string(m[1])
			WaitTCP(tb, "127.0.0.1:"+string(m[1]), proc.Exited())
			break
		}
		select {
		case <-proc.Exited():
			tb.Fatal("local-kms exited before listening")
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatal("local-kms did not say where it listens within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return k
}

// Setenv gives the test's AWS clients (gocloud's awskms, built from the
// environment as in production) credentials for local-kms; the test
// cannot be parallel.
func (k *LocalKMS) Setenv(t testing.TB) {
	for key, val := range map[string]string{
		"AWS_ACCESS_KEY_ID":         kmsAccess,
		"AWS_SECRET_ACCESS_KEY":     kmsSecret,
		"AWS_REGION":                k.Region,
		"AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(key, val)
	}
}

// Client is a KMS client of local-kms, to create keys and data keys.
func (k *LocalKMS) Client() *kms.Client {
	return kms.New(kms.Options{
		Region:       k.Region,
		BaseEndpoint: aws.String(k.Endpoint),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: kmsAccess, SecretAccessKey: kmsSecret}, nil
		}),
	})
}

// KeeperURL is the gocloud awskms:// URL of keyID (a key id, or
// alias/NAME) at this local-kms.
func (k *LocalKMS) KeeperURL(keyID string) string {
	return fmt.Sprintf("awskms://%s?region=%s&endpoint=%s", keyID, k.Region, k.Endpoint)
}
