package sftpd

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/sftptest"
)

// TestRenameOfASettledUploadSaysWhy: a rename of an upload that can no
// longer be renamed tells the client what became of it: one received is
// on its way, one that failed was not received and must be sent again.
func TestRenameOfASettledUploadSaysWhy(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{receiptRetention: time.Hour})
	c := ts.sftpClient(t, uploader)
	r := ts.rawClient(t, uploader)
	tests := []struct {
		name, from string
		upload     func(p string) error
		want       error
	}{
		{"received", "/sent.csv", func(p string) error { return putFile(c, p, source(4<<10)) }, ErrProcessing},
		{"failed for a gap after a reopen", "/gap.csv.filepart", func(p string) error {
			if err := putFile(c, p, source(2<<10)); err != nil {
				return err
			}
			f, err := c.OpenFile(p, os.O_RDWR)
			if err != nil {
				return err
			}
			_, _ = f.WriteAt(source(1<<10), 3<<10)
			if f.Close() == nil {
				t.Error("a close after a gap succeeded")
			}
			return nil
		}, ErrFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.upload(tt.from); err != nil {
				t.Fatal(err)
			}
			code, msg := r.Status(fxpRename, tt.from, "/renamed.csv")
			if code != sftptest.FXPermissionDenied || !strings.Contains(msg, tt.want.Error()) {
				t.Errorf("rename of %s: status %d %q, want permission denied, %q", tt.from, code, msg, tt.want)
			}
		})
	}
}
