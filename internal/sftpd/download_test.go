package sftpd

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/sftptest"
)

// TestDownloadRecorded: every download is an egress transfer, recorded
// when the file is closed or the session ends: delivered when the reads
// covered the file in order, failed with the bytes read in order and their
// sha256 otherwise. A file opened and closed unread is none.
func TestDownloadRecorded(t *testing.T) {
	t.Parallel()
	const size = 100 << 10
	data := source(size)
	type read struct {
		off uint64
		n   uint32
	}
	tests := []struct {
		name     string
		reads    []read
		hangUp   bool // end the connection instead of closing the file
		complete bool
		inOrder  int // bytes read in order from 0
	}{
		{"whole, in order", []read{{0, 40 << 10}, {40 << 10, 40 << 10}, {80 << 10, 40 << 10}}, false, true, size},
		{"whole, overlapping re-reads", []read{{0, 60 << 10}, {10 << 10, 10 << 10}, {50 << 10, 60 << 10}}, false, true, size},
		{"half, then closed", []read{{0, size / 2}}, false, false, size / 2},
		{"half, then cut off", []read{{0, size / 2}}, true, false, size / 2},
		{"ahead of the start", []read{{1 << 10, size}, {0, size}}, false, false, 0},
		{"skips a part", []read{{0, 10 << 10}, {20 << 10, size}}, false, false, 10 << 10},
	}
	t.Run("opened and closed unread", func(t *testing.T) {
		t.Parallel()
		ts := newTestServer(t, serverOptions{})
		c := ts.rawClient(t, egresser)
		typ, body := c.Call(sftptest.FXPOpen, "/download/report.csv", uint32(sftptest.FXFRead), uint32(0))
		if typ != sftptest.FXPHandle {
			t.Fatalf("open: answer of type %d", typ)
		}
		handle, _ := c.String(body)
		if code, msg := c.Status(sftptest.FXPClose, handle); code != sftptest.FXOK {
			t.Fatalf("close: status %d %q", code, msg)
		}
		if trs := ts.transfers(t, egresser); len(trs) != 0 {
			t.Errorf("transfers %+v, want none", trs)
		}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, serverOptions{})
			writeFile(t, filepath.Join(ts.egressDir, "big.bin"), string(data))
			conn := ts.connect(t, egresser)
			c := sftptest.New(t, conn)
			typ, body := c.Call(sftptest.FXPOpen, "/download/big.bin", uint32(sftptest.FXFRead), uint32(0))
			if typ != sftptest.FXPHandle {
				code, msg := c.StatusOf(body)
				t.Fatalf("open: status %d %q", code, msg)
			}
			handle, _ := c.String(body)
			for _, r := range tt.reads {
				if typ, _ := c.Call(sftptest.FXPRead, handle, r.off, r.n); typ != sftptest.FXPData {
					t.Fatalf("read %d at %d: answer of type %d", r.n, r.off, typ)
				}
			}
			if tt.hangUp {
				conn.Close()
			} else if code, msg := c.Status(sftptest.FXPClose, handle); code != sftptest.FXOK {
				t.Fatalf("close: status %d %q", code, msg)
			}

			var tr ledger.Transfer
			eventually(t, "the download to be recorded", func() bool {
				trs := ts.transfers(t, egresser)
				if len(trs) == 1 {
					tr = trs[0]
				}
				return len(trs) == 1
			})
			want := ledger.Transfer{Direction: ledger.Egress, Path: "/big.bin", State: ledger.Failed, Size: int64(tt.inOrder), SHA256: sha256Hex(data[:tt.inOrder])}
			if tt.complete {
				want.State = ledger.Delivered
			}
			if tr.Direction != want.Direction || tr.Path != want.Path || tr.State != want.State || tr.Size != want.Size || tr.SHA256 != want.SHA256 {
				t.Errorf("recorded %s %s %s, %d bytes, sha256 %s; want %s %s %s, %d bytes, sha256 %s",
					tr.Direction, tr.Path, tr.State, tr.Size, tr.SHA256, want.Direction, want.Path, want.State, want.Size, want.SHA256)
			}
			if !tt.complete && !strings.Contains(tr.Error, "partial download") {
				t.Errorf("error %q does not say the download was partial", tr.Error)
			}
			kind := map[bool]string{true: "download.finish", false: "download.partial"}[tt.complete]
			if evs := ts.events(t, kind); len(evs) != 1 || evs[0].TransferID != tr.ID {
				t.Errorf("%d %s events, want one of transfer %s", len(evs), kind, tr.ID)
			}
		})
	}
}

// TestDownloadIsNoUpload: a download's row is not an upload of the same
// path: no entry or receipt in the upload area, and no refusal of an
// upload there under deny or O_EXCL.
func TestDownloadIsNoUpload(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{receiptRetention: time.Hour, overwrite: config.OverwriteDeny})
	c := ts.sftpClient(t, egresser)
	f, err := c.Open("/download/report.csv")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if trs := ts.transfers(t, egresser); len(trs) != 1 || trs[0].Direction != ledger.Egress || trs[0].State != ledger.Delivered {
		t.Fatalf("transfers %+v, want the download, delivered", trs)
	}
	if infos, err := c.ReadDir("/upload"); err != nil || len(infos) != 0 {
		t.Errorf("ReadDir(/upload) = %v, %v; want nothing", fileNames(infos), err)
	}
	w, err := c.OpenFile("/upload/report.csv", os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		t.Fatalf("exclusive upload at the path of a download: %v", err)
	}
	if _, err := w.Write([]byte("up\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}
