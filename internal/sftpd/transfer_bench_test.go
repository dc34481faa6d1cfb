package sftpd

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/ssh"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/storage"
)

// benchServer is an in-process Server on loopback with a SQLite ledger, a
// local landing directory and one egress supplier, for benchmarks: the
// whole SSH + SFTP + landing path without the OpenSSH client (make bench
// measures that one).
type benchServer struct {
	addr       string
	landingDir string
	egressDir  string
	hostKey    ssh.PublicKey
	key        ssh.Signer
}

const benchSupplier = "benchco"

func newBenchServer(b *testing.B) *benchServer {
	b.Helper()
	ctx := context.Background()
	root := b.TempDir()
	bs := &benchServer{landingDir: filepath.Join(root, "landing"), egressDir: filepath.Join(root, "egress")}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	if bs.key, err = ssh.NewSignerFromKey(priv); err != nil {
		b.Fatal(err)
	}
	suppliersDir := filepath.Join(root, "suppliers")
	if err := os.MkdirAll(suppliersDir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(bs.egressDir, 0o755); err != nil {
		b.Fatal(err)
	}
	authorized := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(bs.key.PublicKey())))
	yaml := fmt.Sprintf("name: %s\nemail: data@bench.example\nallowed_ips: [\"127.0.0.0/8\"]\nssh_keys: [%q]\ndestination:\n  url: %q\negress:\n  url: %q\n",
		benchSupplier, authorized, filepath.Join(root, "dest"), bs.egressDir)
	if err := os.WriteFile(filepath.Join(suppliersDir, benchSupplier+".yaml"), []byte(yaml), 0o644); err != nil {
		b.Fatal(err)
	}
	suppliers, err := config.LoadSuppliers(suppliersDir, root)
	if err != nil {
		b.Fatal(err)
	}
	cfg := &config.Config{
		Node:   "bench",
		SFTP:   config.SFTP{HostKeys: []string{filepath.Join(root, "ssh_host_ed25519_key")}},
		Limits: config.Limits{MaxFileSize: config.Size(1 << 40)},
	}
	led, err := ledger.Open(ctx, "sqlite:"+filepath.Join(root, "airlock.db"))
	if err != nil {
		b.Fatal(err)
	}
	landing, err := storage.Open(ctx, bs.landingDir)
	if err != nil {
		b.Fatal(err)
	}
	srv, err := New(Options{
		Config:    cfg,
		Suppliers: func() *config.Suppliers { return suppliers },
		Ledger:    led,
		Landing:   landing,
		Logger:    slog.New(slog.DiscardHandler),
		Metrics:   NewMetrics(prometheus.NewRegistry()),
	})
	if err != nil {
		b.Fatal(err)
	}
	signers, err := LoadHostKeys(cfg.SFTP.HostKeys)
	if err != nil {
		b.Fatal(err)
	}
	bs.hostKey = signers[0].PublicKey()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	bs.addr = ln.Addr().String()
	serveCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(serveCtx, ln) }()
	b.Cleanup(func() {
		cancel()
		<-done
		led.Close()
		landing.Close()
	})
	return bs
}

// client opens an SFTP session that pipelines like the OpenSSH client: 64
// requests of 32 KiB in flight per file.
func (bs *benchServer) client(b *testing.B, cipher string) *sftp.Client {
	b.Helper()
	conf := &ssh.ClientConfig{
		User:            benchSupplier,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(bs.key)},
		HostKeyCallback: ssh.FixedHostKey(bs.hostKey),
		Timeout:         10 * time.Second,
	}
	conf.Ciphers = []string{cipher}
	conn, err := ssh.Dial("tcp", bs.addr, conf)
	if err != nil {
		b.Fatal(err)
	}
	c, err := sftp.NewClient(conn, sftp.MaxPacket(32<<10), sftp.MaxConcurrentRequestsPerFile(64),
		sftp.UseConcurrentWrites(true), sftp.UseConcurrentReads(true))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close(); conn.Close() })
	return c
}

var benchCiphers = []string{ssh.CipherAES128GCM, ssh.CipherChaCha20Poly1305}

// BenchmarkUpload is one 64 MiB upload per op through the in-process
// server into the local landing store (sha256, reorder window, ledger
// included), with pkg/sftp's client on the same machine.
func BenchmarkUpload(b *testing.B) {
	const size = 64 << 20
	src := make([]byte, size)
	if _, err := rand.Read(src); err != nil {
		b.Fatal(err)
	}
	for _, cipher := range benchCiphers {
		b.Run(cipher, func(b *testing.B) {
			bs := newBenchServer(b)
			c := bs.client(b, cipher)
			b.SetBytes(size)
			i := 0
			for b.Loop() {
				i++
				f, err := c.Create(fmt.Sprintf("/upload/u%d.bin", i))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := f.ReadFrom(bytes.NewReader(src)); err != nil {
					b.Fatal(err)
				}
				if err := f.Close(); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := removeAllFiles(bs.landingDir); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// BenchmarkDownload is one 64 MiB read per op of a file in the egress
// store, through /download.
func BenchmarkDownload(b *testing.B) {
	const size = 64 << 20
	src := make([]byte, size)
	if _, err := rand.Read(src); err != nil {
		b.Fatal(err)
	}
	for _, cipher := range benchCiphers {
		b.Run(cipher, func(b *testing.B) {
			bs := newBenchServer(b)
			if err := os.WriteFile(filepath.Join(bs.egressDir, "big.bin"), src, 0o644); err != nil {
				b.Fatal(err)
			}
			c := bs.client(b, cipher)
			b.SetBytes(size)
			for b.Loop() {
				f, err := c.Open("/download/big.bin")
				if err != nil {
					b.Fatal(err)
				}
				n, err := f.WriteTo(io.Discard)
				if err != nil || n != size {
					b.Fatalf("read %d bytes, %v", n, err)
				}
				f.Close()
			}
		})
	}
}

// removeAllFiles deletes the regular files below dir, keeping directories.
func removeAllFiles(dir string) error {
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return os.Remove(p)
	})
}
