package sftpd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"
)

// recordingChannel records the writes that reach the channel.
type recordingChannel struct {
	mu     sync.Mutex
	writes [][]byte
	closed bool
	fail   error
}

func (c *recordingChannel) Read([]byte) (int, error) { return 0, io.EOF }

func (c *recordingChannel) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return 0, c.fail
	}
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

func (c *recordingChannel) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

func (c *recordingChannel) sent() (writes [][]byte, all []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	writes = append([][]byte(nil), c.writes...)
	return writes, bytes.Join(writes, nil)
}

// awaitSent waits until want is all that was written, failing with why
// after a few seconds.
func (c *recordingChannel) awaitSent(t *testing.T, want []byte, why string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, all := c.sent(); bytes.Equal(all, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(why)
		}
		time.Sleep(statusHold)
	}
}

// checkOneWrite fails the test unless want went out in one write, saying
// after what.
func (c *recordingChannel) checkOneWrite(t *testing.T, want []byte, after string) {
	t.Helper()
	if writes, all := c.sent(); len(writes) != 1 || !bytes.Equal(all, want) {
		t.Errorf("after %s: %d writes, %d of %d bytes", after, len(writes), len(all), len(want))
	}
}

// writeLaterAnswers hands n statuses to writeLater and returns their bytes.
func writeLaterAnswers(t *testing.T, p *replyPacker, n int) []byte {
	t.Helper()
	var want []byte
	for i := range n {
		h, _ := reply(101, 20, byte(i))
		if err := p.writeLater(h); err != nil {
			t.Fatal(err)
		}
		want = append(want, h...)
	}
	return want
}

// reply is an SFTP reply of type typ with a body of n bytes, split as
// pkg/sftp writes it: the header (length, type, id and, for data, the
// data's length), then the data.
func reply(typ byte, n int, fill byte) (header, data []byte) {
	body := bytes.Repeat([]byte{fill}, n)
	if typ == fxpData {
		header = binary.BigEndian.AppendUint32(nil, uint32(1+4+4+n))
		header = append(header, typ, 0, 0, 0, 1)
		header = binary.BigEndian.AppendUint32(header, uint32(n))
		return header, body
	}
	header = binary.BigEndian.AppendUint32(nil, uint32(1+4+n))
	return append(append(header, typ, 0, 0, 0, 1), body...), nil
}

func writeReply(t *testing.T, p *replyPacker, header, data []byte) []byte {
	t.Helper()
	for _, part := range [][]byte{header, data} {
		if len(part) == 0 {
			continue
		}
		if _, err := p.Write(part); err != nil {
			t.Fatal(err)
		}
	}
	return append(append([]byte(nil), header...), data...)
}

func TestReplyPacker(t *testing.T) {
	t.Parallel()

	t.Run("answers go at once", func(t *testing.T) {
		t.Parallel()
		ch := &recordingChannel{}
		p := newReplyPacker(ch)
		var want []byte
		for i, n := range []int{20, 0, 300} {
			h, d := reply(101, n, byte(i)) // SSH_FXP_STATUS
			want = append(want, writeReply(t, p, h, d)...)
			if writes, all := ch.sent(); len(writes) != i+1 || !bytes.Equal(all, want) {
				t.Fatalf("after %d replies: %d writes, %d bytes; want %d writes, %d bytes", i+1, len(writes), len(all), i+1, len(want))
			}
		}
		// So does a small read's reply.
		h, d := reply(fxpData, 100, 9)
		want = append(want, writeReply(t, p, h, d)...)
		if _, all := ch.sent(); !bytes.Equal(all, want) {
			t.Errorf("a 100-byte read's reply was held")
		}
	})

	t.Run("read replies fill packets", func(t *testing.T) {
		t.Parallel()
		ch := &recordingChannel{}
		p := newReplyPacker(ch)
		p.hold = time.Hour // however slow the test runs
		var want []byte
		for i := range 10 {
			h, d := reply(fxpData, 32<<10, byte(i))
			want = append(want, writeReply(t, p, h, d)...)
		}
		writes, all := ch.sent()
		for i, w := range writes {
			if len(w)%packetData != 0 {
				t.Errorf("write %d is %d bytes, not whole packets", i, len(w))
			}
		}
		if !bytes.Equal(all, want[:len(all)]) || len(want)-len(all) >= packetData {
			t.Fatalf("%d of %d bytes written, or out of order", len(all), len(want))
		}
		// The status that ends the download takes the rest with it.
		h, d := reply(101, 20, 0xff)
		want = append(want, writeReply(t, p, h, d)...)
		if _, all := ch.sent(); !bytes.Equal(all, want) {
			t.Errorf("after the status, %d of %d bytes written", len(all), len(want))
		}
	})

	t.Run("the rest goes when no reply follows", func(t *testing.T) {
		t.Parallel()
		ch := &recordingChannel{}
		p := newReplyPacker(ch)
		h, d := reply(fxpData, 32<<10, 1)
		want := writeReply(t, p, h, d)
		ch.awaitSent(t, want, "the rest of a read's reply was never written")
	})

	t.Run("close writes the rest", func(t *testing.T) {
		t.Parallel()
		ch := &recordingChannel{}
		p := newReplyPacker(ch)
		h, d := reply(fxpData, 40<<10, 2)
		want := writeReply(t, p, h, d)
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if _, all := ch.sent(); !bytes.Equal(all, want) || !ch.closed {
			t.Errorf("after Close: %d of %d bytes written, closed %v", len(all), len(want), ch.closed)
		}
	})

	t.Run("answers wait while more are owed", func(t *testing.T) {
		t.Parallel()
		ch := &recordingChannel{}
		p := newReplyPacker(ch)
		p.answerHold = time.Hour // however slow the test runs
		p.requests.Store(3)      // three writes of an upload in flight
		var want []byte
		for i := range 3 {
			if _, all := ch.sent(); len(all) != 0 {
				t.Fatalf("%d bytes written with %d answers owed", len(all), 3-i)
			}
			h, d := reply(101, 20, byte(i))
			want = append(want, writeReply(t, p, h, d)...)
		}
		ch.checkOneWrite(t, want, "the last owed answer")
	})

	t.Run("held answers go after the hold", func(t *testing.T) {
		t.Parallel()
		ch := &recordingChannel{}
		p := newReplyPacker(ch)
		p.requests.Store(5)
		h, d := reply(101, 20, 7)
		want := writeReply(t, p, h, d)
		ch.awaitSent(t, want, "a held answer was never written")
	})

	t.Run("at most maxHeld answers wait", func(t *testing.T) {
		t.Parallel()
		ch := &recordingChannel{}
		p := newReplyPacker(ch)
		p.answerHold = time.Hour
		p.requests.Store(1000)
		var want []byte
		for i := range maxHeld + 1 {
			if _, all := ch.sent(); len(all) != 0 {
				t.Fatalf("%d bytes written after %d answers", len(all), i)
			}
			h, d := reply(101, 20, byte(i))
			want = append(want, writeReply(t, p, h, d)...)
		}
		ch.checkOneWrite(t, want, fmt.Sprintf("%d answers", maxHeld+1))
	})

	t.Run("inline answers wait for a flush", func(t *testing.T) {
		t.Parallel()
		ch := &recordingChannel{}
		p := newReplyPacker(ch)
		want := writeLaterAnswers(t, p, maxHeld-1)
		if _, all := ch.sent(); len(all) != 0 {
			t.Fatalf("%d bytes written before the flush", len(all))
		}
		p.flushHeld()
		ch.checkOneWrite(t, want, "the flush")
	})

	t.Run("at most maxHeld inline answers wait", func(t *testing.T) {
		t.Parallel()
		ch := &recordingChannel{}
		p := newReplyPacker(ch)
		want := writeLaterAnswers(t, p, maxHeld)
		ch.checkOneWrite(t, want, fmt.Sprintf("%d answers", maxHeld))
	})

	t.Run("a failed write is sticky", func(t *testing.T) {
		t.Parallel()
		broken := errors.New("channel gone")
		ch := &recordingChannel{fail: broken}
		p := newReplyPacker(ch)
		h, _ := reply(101, 20, 0)
		if _, err := p.Write(h); !errors.Is(err, broken) {
			t.Fatalf("Write = %v, want %v", err, broken)
		}
		ch.mu.Lock()
		ch.fail = nil
		ch.mu.Unlock()
		if _, err := p.Write(h); !errors.Is(err, broken) {
			t.Errorf("Write after a failure = %v, want %v", err, broken)
		}
	})
}

func TestReplyPackerAwaitEarlier(t *testing.T) {
	t.Parallel()
	ch := &recordingChannel{}
	p := newReplyPacker(ch)
	p.requests.Store(3) // two requests owed an answer, then the latest
	done := make(chan error, 1)
	go func() { done <- p.awaitEarlier() }()
	for i := range 2 {
		select {
		case err := <-done:
			t.Fatalf("awaitEarlier returned (%v) with %d earlier requests unanswered", err, 2-i)
		case <-time.After(20 * time.Millisecond):
		}
		h, d := reply(101, 20, byte(i))
		writeReply(t, p, h, d)
	}
	if err := <-done; err != nil {
		t.Fatalf("awaitEarlier = %v once both are answered", err)
	}

	// Closing releases a waiter: the answers will never come.
	p.requests.Store(10)
	go func() { done <- p.awaitEarlier() }()
	time.Sleep(10 * time.Millisecond)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("awaitEarlier on a closed packer returned no error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close left awaitEarlier waiting")
	}
}

// blockedChannel is a client that reads nothing more: writes wait until the
// channel is closed.
type blockedChannel struct {
	recordingChannel
	gone chan struct{}
}

func (c *blockedChannel) Write([]byte) (int, error) {
	<-c.gone
	return 0, io.ErrClosedPipe
}

func (c *blockedChannel) Close() error {
	close(c.gone)
	return nil
}

func TestReplyPackerCloseWithAStuckWrite(t *testing.T) {
	t.Parallel()
	ch := &blockedChannel{gone: make(chan struct{})}
	p := newReplyPacker(ch)
	h, d := reply(101, 20, 0)
	go func() { _, _ = p.Write(append(h, d...)) }() // stuck in the channel
	time.Sleep(10 * time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case <-done:
	case <-time.After(closeFlushTimeout + 5*time.Second):
		t.Fatal("Close hung behind a write the client never reads")
	}
}
