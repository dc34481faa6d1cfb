package testpeer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// VersityIAM is a versitygw S3 gateway that evaluates bucket policies the
// way AWS does: its users are created in versitygw's standalone IAM
// service, so a policy names them by IAM ARN
// (arn:aws:iam::000000000000:user/<name>). It serves S3 over TLS, with a
// certificate CAFile holds, and a second gateway on the same directory and
// users serves it in clear (aws:SecureTransport is false there).
type VersityIAM struct {
	Addr      string // host:port of the S3 API (https)
	PlainAddr string // host:port of the same buckets over http
	CAFile    string // PEM of the certificate the gateway presents

	tb      testing.TB
	iamAddr string // host:port of the IAM API (http, on 127.0.0.1)
	client  *http.Client
}

// VersityAccount is the ARN of a user and the credentials it signs with.
type VersityAccount struct {
	ARN, Access, Secret string
}

// StartVersityIAM starts versitygw's standalone IAM service and a gateway
// using it over a new posix directory; both are killed when the test ends,
// and their output logged if it failed.
func StartVersityIAM(tb testing.TB) *VersityIAM {
	tb.Helper()
	bin := Require(tb, "versitygw")
	dir := tb.TempDir()
	v := &VersityIAM{Addr: FreeAddr(tb), PlainAddr: FreeAddr(tb), iamAddr: FreeAddr(tb), tb: tb}
	cert, key := v.writeCert(dir)
	v.CAFile = cert
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(cert)
	if err != nil || !pool.AppendCertsFromPEM(pem) {
		tb.Fatalf("read %s: %v", cert, err)
	}
	v.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	// A unix socket path must be short: t.TempDir() may be too long.
	sockDir, err := os.MkdirTemp("", "vgw")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "iam.sock")
	for _, d := range []string{"iam", "data"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	iam := v.start(bin, filepath.Join(dir, "iam.log"), "--port", v.iamAddr, "iam", "--dir", filepath.Join(dir, "iam"), "--private-ports", sock)
	WaitTCP(tb, v.iamAddr, iam.Exited())
	gw := v.start(bin, filepath.Join(dir, "gateway.log"), "--port", v.Addr, "--cert", cert, "--key", key,
		"--iam-standalone-endpoint", sock, "posix", filepath.Join(dir, "data"))
	WaitTCP(tb, v.Addr, gw.Exited())
	plain := v.start(bin, filepath.Join(dir, "plain.log"), "--port", v.PlainAddr,
		"--iam-standalone-endpoint", sock, "posix", filepath.Join(dir, "data"))
	WaitTCP(tb, v.PlainAddr, plain.Exited())
	return v
}

// start runs versitygw with the root user's credentials and args, its
// output to log.
func (v *VersityIAM) start(bin, log string, args ...string) *Process {
	v.tb.Helper()
	out, err := os.Create(log)
	if err != nil {
		v.tb.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(bin, append([]string{"--access", versityAccess, "--secret", versitySecret}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	p := Start(v.tb, cmd)
	v.tb.Cleanup(func() {
		p.Kill()
		if v.tb.Failed() {
			b, _ := os.ReadFile(log)
			v.tb.Logf("%s:\n%s", filepath.Base(log), b)
		}
	})
	return p
}

// writeCert writes a self-signed certificate for 127.0.0.1 and its key.
func (v *VersityIAM) writeCert(dir string) (certFile, keyFile string) {
	v.tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		v.tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		v.tb.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		v.tb.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for f, b := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "EC PRIVATE KEY", Bytes: kder}} {
		if err := os.WriteFile(f, pem.EncodeToMemory(b), 0o600); err != nil {
			v.tb.Fatal(err)
		}
	}
	return certFile, keyFile
}

// Root is the gateway's root user, which owns the buckets.
func (v *VersityIAM) Root() VersityAccount {
	return VersityAccount{ARN: "arn:aws:iam::000000000000:root", Access: versityAccess, Secret: versitySecret}
}

// Env gives an AWS SDK the root user's credentials and trust in the
// gateway's certificate.
func (v *VersityIAM) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + versityAccess,
		"AWS_SECRET_ACCESS_KEY=" + versitySecret,
		"AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CA_BUNDLE=" + v.CAFile,
	}
}

// URL is the store URL of bucket.
func (v *VersityIAM) URL(bucket string) string {
	return fmt.Sprintf("s3://%s?endpoint=https://%s&use_path_style=true&region=us-east-1", bucket, v.Addr)
}

// CreateUser creates an IAM user and an access key for it.
func (v *VersityIAM) CreateUser(name string) VersityAccount {
	v.tb.Helper()
	var user struct {
		Arn string `xml:"CreateUserResult>User>Arn"`
	}
	v.iam(url.Values{"Action": {"CreateUser"}, "UserName": {name}}, &user)
	var key struct {
		Access string `xml:"CreateAccessKeyResult>AccessKey>AccessKeyId"`
		Secret string `xml:"CreateAccessKeyResult>AccessKey>SecretAccessKey"`
	}
	v.iam(url.Values{"Action": {"CreateAccessKey"}, "UserName": {name}}, &key)
	if user.Arn == "" || key.Access == "" || key.Secret == "" {
		v.tb.Fatalf("create user %s: arn %q, key %q", name, user.Arn, key.Access)
	}
	return VersityAccount{ARN: user.Arn, Access: key.Access, Secret: key.Secret}
}

// iam calls the IAM API as root and decodes the answer into out.
func (v *VersityIAM) iam(form url.Values, out any) {
	v.tb.Helper()
	form.Set("Version", "2010-05-08")
	body := form.Encode()
	req, err := http.NewRequest(http.MethodPost, "http://"+v.iamAddr+"/", strings.NewReader(body))
	if err != nil {
		v.tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	b, status := v.Do(req, []byte(body), v.Root(), "iam")
	if status != http.StatusOK {
		v.tb.Fatalf("IAM %s: %d %s", form.Get("Action"), status, b)
	}
	if err := xml.Unmarshal(b, out); err != nil {
		v.tb.Fatalf("IAM %s: %v in %s", form.Get("Action"), err, b)
	}
}

// Do signs req (whose body is body) as acc for service ("s3", "iam"),
// sends it, and returns the response body and status.
func (v *VersityIAM) Do(req *http.Request, body []byte, acc VersityAccount, service string) ([]byte, int) {
	v.tb.Helper()
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	creds := aws.Credentials{AccessKeyID: acc.Access, SecretAccessKey: acc.Secret}
	if err := v4.NewSigner().SignHTTP(v.tb.Context(), creds, req, hash, service, "us-east-1", time.Now()); err != nil {
		v.tb.Fatal(err)
	}
	resp, err := v.client.Do(req)
	if err != nil {
		v.tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		v.tb.Fatal(err)
	}
	return b, resp.StatusCode
}

// S3 sends an S3 request for bucket/key (key "" for the bucket) as acc
// over TLS, and returns the response body and status.
func (v *VersityIAM) S3(method, bucket, key string, body []byte, acc VersityAccount) ([]byte, int) {
	v.tb.Helper()
	return v.s3("https://"+v.Addr, method, bucket, key, body, acc)
}

// S3Plain is S3 in clear, through the plain gateway.
func (v *VersityIAM) S3Plain(method, bucket, key string, body []byte, acc VersityAccount) ([]byte, int) {
	v.tb.Helper()
	return v.s3("http://"+v.PlainAddr, method, bucket, key, body, acc)
}

func (v *VersityIAM) s3(base, method, bucket, key string, body []byte, acc VersityAccount) ([]byte, int) {
	v.tb.Helper()
	u := base + "/" + bucket
	if key != "" {
		u += "/" + key
	}
	req, err := http.NewRequest(method, u, strings.NewReader(string(body)))
	if err != nil {
		v.tb.Fatal(err)
	}
	return v.Do(req, body, acc, "s3")
}
