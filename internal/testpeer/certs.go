package testpeer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// CA is a certificate authority made for one test (or one bench run), to
// issue the server and client certificates of mutual TLS. Made by NewCA,
// its methods end the test on an error; made by MakeCA, they panic (the
// bench's certificates come from crypto/rand and a directory it owns).
type CA struct {
	CertFile string // PEM of the CA certificate, the file to trust
	fatal    func(args ...any)
	dir      string
	cert     *x509.Certificate
	key      *ecdsa.PrivateKey
}

// Pair names the PEM files of a certificate and its private key.
type Pair struct{ Cert, Key string }

// NewCA makes a CA named name with its certificate in a temporary directory.
func NewCA(tb testing.TB, name string) *CA {
	tb.Helper()
	ca, err := MakeCA(tb.TempDir(), name)
	if err != nil {
		tb.Fatal(err)
	}
	ca.fatal = tb.Fatal
	return ca
}

// MakeCA makes a CA named name with its files in dir.
func MakeCA(dir, name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ca := &CA{fatal: func(args ...any) { panic(fmt.Sprint(args...)) }, dir: dir, cert: cert, key: key}
	if ca.CertFile, err = ca.write(name+"-ca.pem", "CERTIFICATE", der); err != nil {
		return nil, err
	}
	return ca, nil
}

// Server issues a server certificate for hosts (IP addresses or DNS
// names), by default 127.0.0.1 and localhost.
func (ca *CA) Server(name string, hosts ...string) Pair {
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
	return ca.issue(name, x509.ExtKeyUsageClientAuth, func(*x509.Certificate) {})
}

func (ca *CA) issue(name string, usage x509.ExtKeyUsage, edit func(*x509.Certificate)) Pair {
	p, err := ca.issueErr(name, usage, edit)
	if err != nil {
		ca.fatal(err)
	}
	return p
}

func (ca *CA) issueErr(name string, usage x509.ExtKeyUsage, edit func(*x509.Certificate)) (Pair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Pair{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	edit(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return Pair{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Pair{}, err
	}
	var p Pair
	if p.Cert, err = ca.write(name+".pem", "CERTIFICATE", der); err != nil {
		return Pair{}, err
	}
	if p.Key, err = ca.write(name+".key", "PRIVATE KEY", keyDER); err != nil {
		return Pair{}, err
	}
	return p, nil
}

// write stores der as PEM in a new file named after name: one CA may
// issue certificates of one name to parallel tests.
func (ca *CA) write(name, typ string, der []byte) (string, error) {
	ext := filepath.Ext(name)
	f, err := os.CreateTemp(ca.dir, strings.TrimSuffix(name, ext)+"-*"+ext)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := pem.Encode(f, &pem.Block{Type: typ, Bytes: der}); err != nil {
		return "", err
	}
	return f.Name(), f.Close()
}

// serial is a random certificate serial number; crypto/rand does not
// fail on Linux.
func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}
