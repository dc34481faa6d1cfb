package sftpd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/storage"
)

// cutUpload writes data[:n] to p on a connection of its own, then drops
// the connection with the file open, as a killed client does, and waits
// for the upload to be recorded as interrupted.
func (ts *testServer) cutUpload(t *testing.T, p string, data []byte, n int) ledger.Transfer {
	t.Helper()
	conn, _ := ts.openUpload(t, p, data[:n])
	conn.Close()
	var tr ledger.Transfer
	eventually(t, "the cut upload to be recorded as interrupted", func() bool {
		trs, err := ts.ledger.List(context.Background(), ledger.Filter{Path: p, States: []ledger.State{ledger.Interrupted}})
		if err != nil || len(trs) == 0 {
			return false
		}
		tr = trs[0]
		return true
	})
	if tr.Size != int64(n) {
		t.Fatalf("interrupted upload recorded at %d bytes, want %d", tr.Size, n)
	}
	return tr
}

// openUpload creates p on a connection of its own and writes data to it,
// leaving the file open.
func (ts *testServer) openUpload(t *testing.T, p string, data []byte) (*ssh.Client, *sftp.File) {
	t.Helper()
	conn := ts.connect(t, uploader)
	c, err := sftp.NewClient(conn)
	if err != nil {
		t.Fatal(err)
	}
	f, err := c.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	return conn, f
}

// resumeFrom reopens p with flags and writes data from the length the
// server lists.
func resumeFrom(c *sftp.Client, p string, flags int, data []byte) error {
	fi, err := c.Stat(p)
	if err != nil {
		return err
	}
	f, err := c.OpenFile(p, flags)
	if err != nil {
		return err
	}
	_, werr := f.WriteAt(data[fi.Size():], fi.Size())
	return errors.Join(werr, f.Close())
}

func TestResumeInterruptedUpload(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("0123456789abcdef"), 40<<10) // 640 KiB
	sum := sha256.Sum256(data)
	for _, tt := range []struct {
		name  string
		flags int
	}{
		{"append (OpenSSH reput)", os.O_WRONLY | os.O_CREATE | os.O_APPEND},
		{"read-write (paramiko r+)", os.O_RDWR},
		{"write without truncating", os.O_WRONLY | os.O_CREATE},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, serverOptions{resumeWindow: time.Hour})
			tr := ts.cutUpload(t, "/big.bin", data, 300<<10)

			c := ts.sftpClient(t, uploader)
			if err := resumeFrom(c, "/big.bin", tt.flags, data); err != nil {
				t.Fatalf("resume: %v", err)
			}
			got, err := ts.ledger.Get(context.Background(), tr.ID)
			if err != nil || got.State != ledger.Received || got.Size != int64(len(data)) ||
				got.SHA256 != hex.EncodeToString(sum[:]) || got.Error != "" {
				t.Fatalf("resumed upload = %+v, %v; want received whole, same transfer", got, err)
			}
			landed := ts.landed(t)
			if len(landed) != 1 || !bytes.Equal(landed[got.LandingKey], data) {
				t.Errorf("landing holds %d files; want exactly the whole file at %s", len(landed), got.LandingKey)
			}
			if n := len(ts.transfers(t, uploader)); n != 1 {
				t.Errorf("%d transfers; want the one resumed", n)
			}
			if len(ts.events(t, "upload.interrupt")) != 1 || len(ts.events(t, "upload.resume")) != 1 {
				t.Errorf("want one upload.interrupt and one upload.resume event")
			}
		})
	}
}

// TestResumeRefusals: a resumed upload that rewrites kept bytes is refused
// and fails, keeping nothing; truncation starts over; nothing partial is
// ever received.
func TestResumeRefusals(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("x"), 200<<10)
	ts := newTestServer(t, serverOptions{resumeWindow: time.Hour})
	c := ts.sftpClient(t, uploader)

	tr := ts.cutUpload(t, "/rewrite.bin", data, 100<<10)
	f, err := c.OpenFile("/rewrite.bin", os.O_WRONLY|os.O_APPEND)
	if err != nil {
		t.Fatal(err)
	}
	_, werr := f.WriteAt(data, 0)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err == nil || !strings.Contains(err.Error(), "goes on from byte 102400") {
		t.Errorf("rewriting kept bytes: %v; want a refusal saying where the upload goes on from", err)
	}
	if got, _ := ts.ledger.Get(context.Background(), tr.ID); got.State != ledger.Failed {
		t.Errorf("after the refused resume: state %s, want failed", got.State)
	}

	// Truncating starts a new upload; the interrupted one stays until swept.
	ts.cutUpload(t, "/again.bin", data, 100<<10)
	if err := putFile(c, "/again.bin", data); err != nil {
		t.Fatal(err)
	}
	ts.srv.expireInterrupted(context.Background(), time.Now())
	for _, tr := range ts.transfers(t, uploader) {
		if tr.Path == "/again.bin" && tr.State == ledger.Interrupted {
			t.Errorf("an interrupted upload replaced by a whole one was not ended")
		}
	}
	ts.assertNoKept(t)
}

// TestInterruptedUploadEnds: the window's end, or the supplier removing it,
// fails an interrupted upload and deletes what was kept.
func TestInterruptedUploadEnds(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("y"), 100<<10)
	ts := newTestServer(t, serverOptions{resumeWindow: time.Hour})
	c := ts.sftpClient(t, uploader)

	late := ts.cutUpload(t, "/late.bin", data, 50<<10)
	ts.srv.expireInterrupted(context.Background(), time.Now().Add(30*time.Minute))
	if got, _ := ts.ledger.Get(context.Background(), late.ID); got.State != ledger.Interrupted {
		t.Fatalf("ended before its window: %s", got.State)
	}
	ts.srv.expireInterrupted(context.Background(), time.Now().Add(2*time.Hour))
	if got, _ := ts.ledger.Get(context.Background(), late.ID); got.State != ledger.Failed || !strings.Contains(got.Error, "resume window") {
		t.Errorf("after its window: %s %q; want failed, saying why", got.State, got.Error)
	}

	removed := ts.cutUpload(t, "/removed.bin", data, 50<<10)
	if err := c.Remove("/removed.bin"); err != nil {
		t.Fatalf("remove an interrupted upload: %v", err)
	}
	if got, _ := ts.ledger.Get(context.Background(), removed.ID); got.State != ledger.Failed {
		t.Errorf("removed interrupted upload: state %s, want failed", got.State)
	}
	ts.assertNoKept(t)
	if _, err := ts.ledger.VerifyAudit(context.Background()); err != nil {
		t.Errorf("audit verify: %v", err)
	}
}

// TestResumeOff: with no resume window, a cut upload fails as before.
func TestResumeOff(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	conn, _ := ts.openUpload(t, "/x.bin", make([]byte, 1000))
	conn.Close()
	eventually(t, "the cut upload to fail", func() bool {
		trs := ts.transfers(t, uploader)
		return len(trs) == 1 && trs[0].State == ledger.Failed && trs[0].Size == 1000
	})
	ts.assertNothingLanded(t)
}

func (ts *testServer) assertNoKept(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(ts.landingDir, storage.KeptDir)); !errors.Is(err, os.ErrNotExist) {
		entries, _ := os.ReadDir(filepath.Join(ts.landingDir, storage.KeptDir))
		t.Errorf("bytes kept to resume are left behind: %d files (%v)", len(entries), err)
	}
}
