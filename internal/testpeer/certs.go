package testpeer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// CA is a certificate authority made for one test, to issue the server and
// client certificates of mutual TLS.
type CA struct {
	CertFile string // PEM of the CA certificate, the file to trust
	tb       testing.TB
	dir      string
	cert     *x509.Certificate
	key      *ecdsa.PrivateKey
}

// Pair names the PEM files of a certificate and its private key.
type Pair struct{ Cert, Key string }

// NewCA makes a CA named name with its certificate in a temporary directory.
func NewCA(tb testing.TB, name string) *CA {
	tb.Helper()
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(tb),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	ca := &CA{tb: tb, dir: tb.TempDir(), cert: cert, key: key}
	ca.CertFile = ca.write(name+"-ca.pem", "CERTIFICATE", der)
	return ca
}

// Server issues a server certificate for hosts (IP addresses or DNS
// names), by default 127.0.0.1 and localhost.
func (ca *CA) Server(name string, hosts ...string) Pair {
	ca.tb.Helper()
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1", "localhost"}
	}
	return ca.issue(name, x509.ExtKeyUsageServerAuth, func(c *x509.Certificate) {
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil {
				c.IPAddresses = append(c.IPAddresses, ip)
			} else {
				c.DNSNames = append(c.DNSNames, h)
			}
		}
	})
}

// Client issues a client certificate with common name name.
func (ca *CA) Client(name string) Pair {
	ca.tb.Helper()
	return ca.issue(name, x509.ExtKeyUsageClientAuth, func(*x509.Certificate) {})
}

func (ca *CA) issue(name string, usage x509.ExtKeyUsage, edit func(*x509.Certificate)) Pair {
	key := newKey(ca.tb)
	tmpl := &x509.Certificate{
		SerialNumber: serial(ca.tb),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	edit(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.tb.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		ca.tb.Fatal(err)
	}
	return Pair{
		Cert: ca.write(name+".pem", "CERTIFICATE", der),
		Key:  ca.write(name+".key", "PRIVATE KEY", keyDER),
	}
}

// write stores der as PEM in a new file named after name: one CA may
// issue certificates of one name to parallel tests.
func (ca *CA) write(name, typ string, der []byte) string {
	ext := filepath.Ext(name)
	f, err := os.CreateTemp(ca.dir, strings.TrimSuffix(name, ext)+"-*"+ext)
	if err != nil {
		ca.tb.Fatal(err)
	}
	defer f.Close()
	if err := pem.Encode(f, &pem.Block{Type: typ, Bytes: der}); err != nil {
		ca.tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		ca.tb.Fatal(err)
	}
	return f.Name()
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return key
}

func serial(tb testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		tb.Fatal(err)
	}
	return n
}
