package integration

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	sinkhttps "github.com/airlock-gw/airlock/internal/sink/https"
	"github.com/airlock-gw/airlock/internal/testpeer"
)

// The HTTPS sink against a real nginx that takes PUTs (dav_methods PUT)
// only from clients with a certificate of its CA (ssl_verify_client on),
// as partners' receivers do.
func TestHTTPSinkNginx(t *testing.T) {
	t.Parallel()
	ca := testpeer.NewCA(t, "partner")
	other := testpeer.NewCA(t, "other")
	ngx := testpeer.StartNginx(t, ca.Server("receiver"), ca.CertFile)
	client := ca.Client("airlock")
	good := sinkhttps.TLSFiles{Cert: client.Cert, Key: client.Key, CA: ca.CertFile}
	sink := func(t *testing.T, files sinkhttps.TLSFiles) *sinkhttps.Sink {
		t.Helper()
		s, err := sinkhttps.New(ngx.URL+"DA/", files, sinkhttps.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	put := func(s *sinkhttps.Sink, rel string, body []byte) error {
		sum := sha256.Sum256(body)
		return s.Put(t.Context(), rel, bytes.NewReader(body), int64(len(body)),
			map[string]string{sinkhttps.HeaderSHA256: hex.EncodeToString(sum[:]), sinkhttps.HeaderBatch: "b-1"})
	}
	landed := func(t *testing.T, rel string, want []byte) {
		t.Helper()
		got, err := os.ReadFile(filepath.Join(ngx.Root, "DA", filepath.FromSlash(rel)))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("nginx has %d bytes at %s (%v), want the %d sent", len(got), rel, err, len(want))
		}
	}

	t.Run("delivers", func(t *testing.T) {
		body := make([]byte, 3<<20+17)
		_, _ = rand.Read(body)
		rel := "2026-12-07/part one.csv"
		s := sink(t, good)
		if err := put(s, rel, body); err != nil {
			t.Fatalf("Put: %v", err)
		}
		landed(t, rel, body)
		sum := sha256.Sum256(body)
		// nginx logs a request after answering it.
		line := "PUT /DA/2026-12-07/part one.csv 201 " + hex.EncodeToString(sum[:]) + " b-1"
		eventually(t, 10*time.Second, "the headers in nginx's access log", func() bool { return strings.Contains(ngx.AccessLog(), line) })
		// A retry after a lost answer replaces the file: one file, whole.
		if err := put(s, rel, body); err != nil {
			t.Fatalf("Put again: %v", err)
		}
		landed(t, rel, body)
		entries, _ := os.ReadDir(filepath.Join(ngx.Root, "DA", "2026-12-07"))
		if len(entries) != 1 {
			t.Fatalf("nginx has %d files, want 1", len(entries))
		}
	})

	t.Run("many files at once", func(t *testing.T) {
		s := sink(t, good)
		const files, workers = 120, 4
		bodies := make([][]byte, files)
		for i := range bodies {
			bodies[i] = make([]byte, 1+i*311%(64<<10))
			_, _ = rand.Read(bodies[i])
		}
		errs := make(chan error, files)
		next := make(chan int, files)
		for i := range files {
			next <- i
		}
		close(next)
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for i := range next {
					errs <- put(s, fmt.Sprintf("many/f%03d.bin", i), bodies[i])
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
		}
		for i, b := range bodies {
			landed(t, fmt.Sprintf("many/f%03d.bin", i), b)
		}
	})

	refusals := []struct {
		name  string
		files sinkhttps.TLSFiles
		want  []string
	}{
		{"no client certificate", sinkhttps.TLSFiles{CA: ca.CertFile}, []string{"400 Bad Request", "No required SSL certificate was sent"}},
		{"client certificate of another CA", func() sinkhttps.TLSFiles {
			p := other.Client("airlock")
			return sinkhttps.TLSFiles{Cert: p.Cert, Key: p.Key, CA: ca.CertFile}
		}(), []string{"400 Bad Request", "The SSL certificate error"}},
		{"airlock trusts another CA", sinkhttps.TLSFiles{Cert: client.Cert, Key: client.Key, CA: other.CertFile}, []string{"fails verification against tls.ca", "unknown authority"}},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			rel := "refused/" + strings.ReplaceAll(tt.name, " ", "-")
			err := put(sink(t, tt.files), rel, []byte("must not arrive"))
			if !errors.Is(err, sinkhttps.ErrPermanent) {
				t.Fatalf("Put: %v, want a permanent error", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Put: %v, want %q in it", err, w)
				}
			}
			if _, err := os.Stat(filepath.Join(ngx.Root, "DA", rel)); !os.IsNotExist(err) {
				t.Fatalf("the refused file is in nginx's directory (%v)", err)
			}
		})
	}

	t.Run("outage delays", func(t *testing.T) {
		s := sink(t, good)
		body := []byte("sent after the outage")
		ngx.Stop()
		err := put(s, "late.csv", body)
		if err == nil || errors.Is(err, sinkhttps.ErrPermanent) || !strings.Contains(err.Error(), "connection refused") {
			t.Fatalf("Put with nginx stopped: %v, want a retryable connection refused", err)
		}
		ngx.Start()
		if err := put(s, "late.csv", body); err != nil {
			t.Fatalf("Put after nginx returned: %v", err)
		}
		landed(t, "late.csv", body)
	})

	t.Run("outage mid-file", func(t *testing.T) {
		s := sink(t, good)
		body := make([]byte, 16<<20)
		_, _ = rand.Read(body)
		// nginx is stopped once 4 MiB have been read from the body.
		cut := &stopAt{r: bytes.NewReader(body), at: 4 << 20, stop: ngx.Stop}
		err := s.Put(t.Context(), "cut.bin", cut, int64(len(body)), nil)
		if err == nil || errors.Is(err, sinkhttps.ErrPermanent) {
			t.Fatalf("Put cut by nginx stopping: %v, want a retryable error", err)
		}
		t.Logf("cut by nginx stopping: %v", err)
		if _, err := os.Stat(filepath.Join(ngx.Root, "DA", "cut.bin")); !os.IsNotExist(err) {
			t.Fatalf("a partial file is in nginx's directory (%v)", err)
		}
		ngx.Start()
		if err := put(s, "cut.bin", body); err != nil {
			t.Fatalf("Put after nginx returned: %v", err)
		}
		landed(t, "cut.bin", body)
	})
}

// stopAt calls stop once at bytes have been read through it.
type stopAt struct {
	r        io.Reader
	at, read int64
	stop     func()
}

func (s *stopAt) Read(p []byte) (int, error) {
	if s.stop != nil && s.read >= s.at {
		s.stop()
		s.stop = nil
	}
	n, err := s.r.Read(p)
	s.read += int64(n)
	return n, err
}
