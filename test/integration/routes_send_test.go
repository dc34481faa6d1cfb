package integration

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlock-gw/airlock/internal/crypt"
	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/testpeer"
)

// dksURL is the test's data key service: the key wraps data keys.
const dksURL = "base64key://smGbjm71Nxd1Ig5FS0wj9SlbzAIrnolCz9bQQ6uAhl4="

// envelope encrypts plain as the egress pipelines do: AES-256-CTR under a
// fresh data key, wrapped by dksURL, in the object's metadata.
func envelope(t *testing.T, plain []byte) (body []byte, meta map[string]string, dataKey []byte) {
	t.Helper()
	stream, meta, dataKey := newDataKey(t)
	body = make([]byte, len(plain))
	stream.XORKeyStream(body, plain)
	return body, meta, dataKey
}

// newDataKey makes a fresh data key and IV, and returns the AES-256-CTR
// stream they start, the envelope's metadata (the key wrapped by
// dksURL) and the key.
func newDataKey(t *testing.T) (cipher.Stream, map[string]string, []byte) {
	t.Helper()
	dataKey, iv := make([]byte, 32), make([]byte, 16)
	rand.Read(dataKey)
	rand.Read(iv)
	block, err := aes.NewCipher(dataKey)
	if err != nil {
		t.Fatal(err)
	}
	keeper, err := crypt.OpenKeys(t.Context(), dksURL)
	if err != nil {
		t.Fatal(err)
	}
	defer keeper.Close()
	wrapped, err := keeper.Encrypt(t.Context(), dataKey)
	if err != nil {
		t.Fatal(err)
	}
	return cipher.NewCTR(block, iv), map[string]string{crypt.MetaKeyID: "dks-test", crypt.MetaWrappedKey: base64.StdEncoding.EncodeToString(wrapped),
		crypt.MetaIV: base64.StdEncoding.EncodeToString(iv)}, dataKey
}

// TestRouteDecryptAndRewrap: two routes watch one prefix of envelope-
// encrypted objects on versitygw (the egress table's pipeline and
// pipeline#sft): one decrypts them into a store, the other sends them
// still encrypted to nginx over mutual TLS, with the data key rewrapped
// for the recipient's RSA key (RSA-OAEP, SHA-256). An object whose
// envelope is partial is sent by neither.
func TestRouteDecryptAndRewrap(t *testing.T) {
	t.Parallel()
	s3srv := startVersity(t, "src")
	ca := testpeer.NewCA(t, "partner")
	ngx := testpeer.StartNginx(t, ca.Server("receiver"), ca.CertFile)
	client := ca.Client("airlock")
	recipient, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	g := newGateway(t, gatewayOpts{env: s3srv.Env(), extra: fmt.Sprintf("watch:\n  every: 300ms\nkeys:\n  dks: %q\n", dksURL)})
	pub, _ := x509.MarshalPKIXPublicKey(&recipient.PublicKey)
	writeFile(t, filepath.Join(g.dir, "keys", "recipient.pem"), string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})))
	writeFile(t, filepath.Join(g.dir, "suppliers", ".keep"), "")
	source := testpeer.S3URL(s3srv.Addr, "src", "dataegress/dw/")
	plainDir := filepath.Join(t.TempDir(), "plain")
	writeFile(t, filepath.Join(g.dir, "routes", "dw.yaml"), fmt.Sprintf("name: dw\nsource: %q\ndecrypt: true\ndestination: %q\n", source, plainDir))
	writeFile(t, filepath.Join(g.dir, "routes", "dw-sft.yaml"), fmt.Sprintf(
		"name: dw-sft\nsource: %q\nrewrap: keys/recipient.pem\ndestination: %q\ntls: {cert: %q, key: %q, ca: %q}\nrecipient: \"Data Warehouse\"\n",
		source, ngx.URL+"DA/", client.Cert, client.Key, ca.CertFile))
	g.start()

	client3 := s3Client(t, s3srv.Versity)
	putObject := func(key string, body []byte, meta map[string]string) {
		t.Helper()
		if _, err := client3.PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String("src"), Key: aws.String(key),
			Body: bytes.NewReader(body), Metadata: meta}); err != nil {
			t.Fatal(err)
		}
	}
	plain := map[string][]byte{"a.csv": []byte(strings.Repeat("row,1\n", 5000)), "sub/b.bin": bytes.Repeat([]byte{7}, 3<<20)}
	bodies, keys := map[string][]byte{}, map[string][]byte{}
	for name, p := range plain {
		body, meta, dataKey := envelope(t, p)
		bodies[name], keys[name] = body, dataKey
		putObject("dataegress/dw/"+name, body, meta)
	}
	partial, meta, _ := envelope(t, []byte("secret"))
	delete(meta, crypt.MetaIV)
	putObject("dataegress/dw/partial.csv", partial, meta)

	waitRoute := func(route string) map[string]ledger.Transfer {
		t.Helper()
		byPath := map[string]ledger.Transfer{}
		eventually(t, time.Minute, route+" to settle its 3 files", func() bool {
			settled := 0
			for _, tr := range g.egressRows(t, route) {
				byPath[tr.Path] = tr
				if tr.State == ledger.Delivered || tr.State == ledger.Failed {
					settled++
				}
			}
			return settled == 3
		})
		return byPath
	}
	for route, rows := range map[string]map[string]ledger.Transfer{"dw": waitRoute("dw"), "dw-sft": waitRoute("dw-sft")} {
		if tr := rows["/partial.csv"]; tr.State != ledger.Failed || !strings.Contains(tr.Error, "iv") {
			t.Errorf("%s: partial envelope: %s (%q); want failed, naming the iv", route, tr.State, tr.Error)
		}
		for name := range plain {
			if tr := rows["/"+name]; tr.State != ledger.Delivered {
				t.Errorf("%s %s: %s (%s)", route, name, tr.State, tr.Error)
			}
		}
	}
	for name, p := range plain {
		if got, err := os.ReadFile(filepath.Join(plainDir, filepath.FromSlash(name))); err != nil || !bytes.Equal(got, p) {
			t.Errorf("dw %s: %d bytes (%v); want the %d plaintext bytes", name, len(got), err, len(p))
		}
		if got, err := os.ReadFile(filepath.Join(ngx.Root, "DA", filepath.FromSlash(name))); err != nil || !bytes.Equal(got, bodies[name]) {
			t.Errorf("dw-sft %s: %d bytes (%v); want the %d encrypted bytes as they were", name, len(got), err, len(bodies[name]))
		}
	}
	if _, err := os.Stat(filepath.Join(plainDir, "partial.csv")); err == nil {
		t.Error("the partial envelope was written decrypted")
	}
	// The recipient unwraps each rewrapped data key with its private key.
	unwrapped := 0
	for _, line := range strings.Split(strings.TrimSpace(ngx.AccessLog()), "\n") {
		f := strings.Fields(line) // method uri status sha256 batch transfer ciphertext keyid iv
		if len(f) < 9 || f[0] != "PUT" {
			continue
		}
		name := strings.TrimPrefix(f[1], "/DA/")
		wrapped, err := base64.StdEncoding.DecodeString(f[6])
		if err != nil {
			t.Fatalf("%s: X-Datakey-Ciphertext %q: %v", name, f[6], err)
		}
		dataKey, err := rsa.DecryptOAEP(sha256.New(), nil, recipient, wrapped, nil)
		if err != nil || !bytes.Equal(dataKey, keys[name]) {
			t.Errorf("%s: the rewrapped key does not unwrap to the data key (%v)", name, err)
		}
		if !strings.HasPrefix(f[7], "sha256:") {
			t.Errorf("%s: key id %q; want the recipient key's fingerprint", name, f[7])
		}
		unwrapped++
	}
	if unwrapped != len(plain) {
		t.Errorf("%d rewrapped keys checked in nginx's log; want %d", unwrapped, len(plain))
	}
	g.auditVerifies(t)
}
