package sftpd

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

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

// TestMemoryBudgetFairness: one supplier cannot hold more than half the
// budget, so another supplier still gets memory; a wait that outlasts the
// limit is refused as busy; overdraft never waits.
func TestMemoryBudgetFairness(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := newMemoryBudget(4, 1, 50*time.Millisecond) // room for 4 uploads, 2 per supplier
	waits := 0
	onWait := func() { waits++ }

	var releases []func()
	for range 2 {
		release, err := b.reserve(ctx, "greedy", false, onWait)
		if err != nil || waits != 0 {
			t.Fatalf("within the share: %d waits, %v", waits, err)
		}
		releases = append(releases, release)
	}
	if _, err := b.reserve(ctx, "greedy", false, onWait); !errors.Is(err, ErrBusy) || waits != 1 {
		t.Fatalf("beyond the share: %d waits, err %v; want a busy refusal after waiting", waits, err)
	}
	release, err := b.reserve(ctx, "greedy", true, onWait)
	if err != nil || waits != 1 {
		t.Fatalf("overdraft: %d waits, %v", waits, err)
	}
	release()
	for range 2 {
		if _, err := b.reserve(ctx, "patient", false, onWait); err != nil || waits != 1 {
			t.Fatalf("another supplier was kept waiting: %d waits, %v", waits, err)
		}
	}

	// A waiter gets memory as soon as it is released.
	b.wait = time.Minute
	got := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		_, err := b.reserve(ctx, "greedy", false, func() { close(started) })
		got <- err
	}()
	<-started
	releases[0]()
	if err := <-got; err != nil {
		t.Fatalf("waiter after a release: %v", err)
	}
	if n := len(b.suppliers); n != 2 {
		t.Fatalf("%d suppliers tracked, want 2 with uploads in progress", n)
	}
}
