package sftpd

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/airlock-gw/airlock/internal/config"
)

// benchClient opens an SFTP session on the in-process test server (the
// whole SSH + SFTP + landing path without the OpenSSH client, which make
// bench measures) as the egress supplier. It pipelines like the OpenSSH
// client: 64 requests of 32 KiB in flight per file.
func benchClient(b *testing.B, ts *testServer, cipher string) *sftp.Client {
	b.Helper()
	conn, err := ts.dial(egresser, ts.keys[egresser], cipher)
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

// benchOptions lift the test server's small file size limit.
var benchOptions = serverOptions{maxFileSize: 1 << 40}

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
			ts := newTestServer(b, benchOptions)
			c := benchClient(b, ts, cipher)
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
				if err := removeAllFiles(ts.landingDir); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// BenchmarkSmallUpload is one 1 KiB upload per op, opened as the OpenSSH
// client opens (WRITE|CREAT|TRUNC), under each overwrite policy: what an
// upload's open, writes and close cost the server.
func BenchmarkSmallUpload(b *testing.B) {
	src := make([]byte, 1<<10)
	for _, policy := range []string{config.OverwriteAllow, config.OverwriteDeny, config.OverwriteVersion} {
		b.Run(policy, func(b *testing.B) {
			ts := newTestServer(b, serverOptions{overwrite: policy})
			c := benchClient(b, ts, ssh.CipherAES128GCM)
			i := 0
			for b.Loop() {
				i++
				f, err := c.OpenFile(fmt.Sprintf("/upload/s%d.bin", i), os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := f.Write(src); err != nil {
					b.Fatal(err)
				}
				if err := f.Close(); err != nil {
					b.Fatal(err)
				}
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
			ts := newTestServer(b, benchOptions)
			if err := os.WriteFile(filepath.Join(ts.egressDir, "big.bin"), src, 0o644); err != nil {
				b.Fatal(err)
			}
			c := benchClient(b, ts, cipher)
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
