package sftpd

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestUploadMemoryBudget: with room for one upload's buffers, an upload in
// another session waits (it does not fail) until the first one closes,
// while the first session itself may open a second file without
// deadlocking on its own reservation.
func TestUploadMemoryBudget(t *testing.T) {
	t.Parallel()
	window := 1 << 20
	ts := newTestServer(t, serverOptions{reorderWindow: window, uploadMemory: int64(window) + 1<<20})
	holder, other := ts.sftpClient(t, uploader), ts.sftpClient(t, uploader)

	first, err := holder.Create("/first.csv")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Write([]byte("first\n")); err != nil {
		t.Fatal(err)
	}
	if err := putFile(holder, "/same-session.csv", []byte("same\n")); err != nil {
		t.Fatalf("a second upload in the session holding the budget: %v", err)
	}

	waiting := make(chan error, 1)
	go func() { waiting <- putFile(other, "/other-session.csv", []byte("other\n")) }()
	eventually(t, "the other session's upload to wait for memory", func() bool {
		return testutil.ToFloat64(ts.metrics.memoryWaits) == 1
	})
	select {
	case err := <-waiting:
		t.Fatalf("the other session's upload finished while the budget was held: %v", err)
	default:
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-waiting; err != nil {
		t.Fatalf("the waiting upload failed instead of waiting: %v", err)
	}
	if n := len(ts.transfers(t, uploader)); n != 3 {
		t.Fatalf("%d transfers, want 3", n)
	}
	for _, tr := range ts.transfers(t, uploader) {
		if tr.State != "received" {
			t.Fatalf("%s is %s, want received", tr.Path, tr.State)
		}
	}
}

// TestSessionUploadCap: one session cannot open unbounded uploads at once.
func TestSessionUploadCap(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	c := ts.sftpClient(t, uploader)
	for i := range maxSessionUploads {
		f, err := c.Create(fmt.Sprintf("/open-%d.csv", i))
		if err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
		defer f.Close()
	}
	if _, err := c.Create("/one-too-many.csv"); err == nil {
		t.Fatalf("upload %d of one session was accepted", maxSessionUploads+1)
	}
}
