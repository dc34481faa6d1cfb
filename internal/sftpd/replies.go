package sftpd

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// replyPacker sits between the SSH channel and the two writers of replies,
// pkg/sftp and the file lane, and packs replies into SSH packets.
//
// Every channel write is at least one SSH packet, encrypted and sent with a
// system call of its own, and SSH clients take at most 32 KiB in a packet.
// OpenSSH's server streams replies through a buffer and sends full packets;
// replies written one by one would not:
//
//   - A reply to a 32 KiB read is 13 bytes longer, so every read cost two
//     packets, one of them of 13 bytes. Of a read's reply the packer writes
//     whole packets and keeps the rest, under 32 KiB, to go in front of the
//     next reply, or alone when none follows within the hold time (holdFor).
//   - Every write of an upload is acknowledged by a status of 28 bytes, a
//     packet each. The lane's write answers wait (writeLater) until the
//     guard is about to wait for the client, or maxHeld have gathered. Of
//     pkg/sftp's answers, one waits while the client has more requests in
//     flight (the guard counts them), up to maxHeld or statusHold; an answer
//     the client waits for with nothing else in flight goes at once.
//
// Counting requests and replies also lets the lane wait until pkg/sftp has
// answered every earlier request (awaitEarlier).
type replyPacker struct {
	io.ReadWriteCloser // the channel

	mu         sync.Mutex
	buf        []byte        // bytes not yet written: the kept rest, then the reply being written
	whole      int           // buf[:whole] ends at a reply boundary
	hold       time.Duration // how long the rest of a read's reply waits
	answerHold time.Duration // how long an answer waits for more
	timer      *time.Timer
	err        error // the channel's write error; sticky

	requests atomic.Int64 // requests read from the client, counted by the guard
	replies  int64        // replies complete in buf or written
	held     int          // answers held while more are owed
	answered *sync.Cond   // signalled as replies grow, for awaitEarlier
	writing  atomic.Int64 // UnixNano when the channel write under way began; 0: none
	waiting  bool         // someone waits on answered
	closed   bool
}

const (
	// packetData is the data an SSH packet of the channel carries: the
	// maximum of OpenSSH's client and of x/crypto/ssh's.
	packetData = 32 << 10
	// largeData is the size from which the rest of a read's reply is kept
	// back to fill packets; other replies are the answers a client waits
	// for, and go at once.
	largeData = 8 << 10
	fxpData   = 103 // SSH_FXP_DATA
	// holdFor is how long the rest of a large reply waits for the next
	// reply before it is written alone.
	holdFor = time.Millisecond
	// maxHeld and statusHold bound how many answers, and for how long,
	// wait for more while the client has further requests in flight.
	maxHeld    = 16
	statusHold = 200 * time.Microsecond
	// closeFlushTimeout bounds how long closing waits to write what is
	// kept.
	closeFlushTimeout = time.Second
)

var _ io.ReadWriteCloser = (*replyPacker)(nil)

func newReplyPacker(ch io.ReadWriteCloser) *replyPacker {
	p := &replyPacker{ReadWriteCloser: ch, hold: holdFor, answerHold: statusHold}
	p.timer = time.AfterFunc(time.Hour, p.flushHeld)
	p.timer.Stop()
	p.answered = sync.NewCond(&p.mu)
	return p
}

// Write takes part or all of one reply, as pkg/sftp writes them: one
// writer at a time, a reply's parts in order.
func (p *replyPacker) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return 0, p.err
	}
	p.buf = append(p.buf, b...)
	end, data := p.whole, false
	for rest := p.buf[end:]; len(rest) >= 5; rest = p.buf[end:] {
		n := 4 + int(binary.BigEndian.Uint32(rest))
		if len(rest) < n {
			break
		}
		end += n
		p.replies++
		data = rest[4] == fxpData && n >= largeData
	}
	if end == p.whole {
		return len(b), nil // the rest of this reply is still to come
	}
	p.whole = end
	p.signalAnswered()
	if !data {
		if p.requests.Load() > p.replies && p.held < maxHeld {
			p.held++
			p.timer.Reset(p.answerHold)
			return len(b), nil
		}
		p.timer.Stop()
		p.held = 0
		return len(b), p.writeLocked(p.whole)
	}
	p.held = 0
	if err := p.writeLocked(p.whole / packetData * packetData); err != nil {
		return len(b), err
	}
	if p.whole > 0 {
		p.timer.Reset(p.hold)
	}
	return len(b), nil
}

// writeLater takes one whole reply, sent by the inline server while the
// client streams requests: it waits for flushHeld, which the guard calls
// before it waits for the client, or for maxHeld answers to gather.
func (p *replyPacker) writeLater(b []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	p.buf = append(p.buf, b...)
	p.whole = len(p.buf)
	p.replies++
	if p.held++; p.held < maxHeld {
		return nil
	}
	p.held = 0
	p.timer.Stop()
	return p.writeLocked(p.whole)
}

// awaitEarlier waits until every request read before the latest one has
// its reply: the inline server answers a request only once the SFTP
// library is done with the ones before it, as a server serving them in
// order would be.
func (p *replyPacker) awaitEarlier() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.err == nil && !p.closed && p.replies < p.requests.Load()-1 {
		p.waiting = true
		p.answered.Wait()
	}
	if p.closed {
		return net.ErrClosed
	}
	return p.err
}

func (p *replyPacker) signalAnswered() {
	if p.waiting {
		p.waiting = false
		p.answered.Broadcast()
	}
}

// writeLocked writes buf[:n] and keeps the rest.
func (p *replyPacker) writeLocked(n int) error {
	if n == 0 {
		return nil
	}
	p.writing.Store(time.Now().UnixNano())
	_, err := p.ReadWriteCloser.Write(p.buf[:n])
	p.writing.Store(0)
	if err != nil {
		p.err = err
		return err
	}
	p.whole -= n
	p.buf = append(p.buf[:0], p.buf[n:]...)
	return nil
}

// stalledFor is how long the channel write under way has waited for the
// client to take it, 0 when none is under way.
func (p *replyPacker) stalledFor() time.Duration {
	since := p.writing.Load()
	if since == 0 {
		return 0
	}
	return time.Since(time.Unix(0, since))
}

// flushHeld writes what a large reply left, when no reply followed it.
func (p *replyPacker) flushHeld() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.held = 0
		_ = p.writeLocked(p.whole) // a failure is kept for the next Write
	}
}

// Close writes what is kept and closes the channel. A client that reads no
// more can hold a write up for ever; closing the channel is what ends it,
// so Close waits for the last write for closeFlushTimeout at most.
func (p *replyPacker) Close() error {
	flushed := make(chan struct{})
	go func() {
		p.flushHeld()
		close(flushed)
	}()
	timer := time.NewTimer(closeFlushTimeout)
	defer timer.Stop()
	select {
	case <-flushed:
	case <-timer.C:
	}
	// Closing the channel ends a write stuck with the lock held.
	err := p.ReadWriteCloser.Close()
	p.mu.Lock()
	p.closed = true
	p.answered.Broadcast()
	p.mu.Unlock()
	return err
}
