package sftpd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/pkg/sftp"
)

// writeLane serves uploads in the goroutine that reads the client's
// requests, in the order the client sent them.
//
// pkg/sftp allocates every request afresh and hands it to one of eight
// workers, whose replies are put back in order after; an upload's 32 KiB
// writes then arrive at the file out of order, most of them to be copied
// into the reorder window. The lane opens uploads itself and takes every
// request on their handles (write, close, fstat, fsetstat, read) straight
// from the guard's buffer. Everything else goes on to pkg/sftp, and the
// session's handlers decide alike for both: the lane calls them.
type writeLane struct {
	sess    *session
	replies *replyPacker
	files   map[string]*laneFile // open uploads by handle
	opened  uint64               // handles given out
	held    bool                 // write answers wait in the packer
	reply   []byte               // the reply being encoded
}

// laneFile is an upload open on the lane.
type laneFile struct {
	up   *upload
	path string // the path it was opened with, cleaned
}

var _ inlineServer = (*writeLane)(nil)

// SFTP v3 packet types and flags the lane serves beyond those the guard
// names (draft-ietf-secsh-filexfer-02).
const (
	fxpClose    = 4
	fxpRead     = 5
	fxpWrite    = 6
	fxpFstat    = 8
	fxpFsetstat = 10
	fxpStatus   = 101
	fxpHandle   = 102
	fxpAttrs    = 105

	fxfRead   = 0x01
	fxfWrite  = 0x02
	fxfAppend = 0x04
	fxfCreat  = 0x08
	fxfTrunc  = 0x10
	// writeFlags open a file for writing, as pkg/sftp takes them.
	writeFlags = fxfWrite | fxfAppend | fxfCreat | fxfTrunc

	attrSize        = 0x01
	attrPermissions = 0x04
	attrTimes       = 0x08
	modeRegular     = 0o100000
	modeDir         = 0o040000
)

// handlePrefix starts the lane's handles; pkg/sftp's are decimal numbers.
const handlePrefix = "w"

func newWriteLane(sess *session, replies *replyPacker) *writeLane {
	return &writeLane{sess: sess, replies: replies, files: make(map[string]*laneFile)}
}

func (l *writeLane) serve(pkt []byte) bool {
	req := fields{b: pkt[5:]}
	id := req.uint32()
	switch pkt[4] {
	case fxpOpen:
		name := req.bytes()
		pflags := req.uint32()
		if req.bad || pflags&writeFlags == 0 {
			return false
		}
		if l.awaitEarlier() {
			l.open(id, string(name), pflags)
		}
		return true
	case fxpClose, fxpRead, fxpWrite, fxpFstat, fxpFsetstat:
		handle := req.bytes()
		f, mine := l.files[string(handle)]
		if req.bad || !mine {
			return false
		}
		if l.awaitEarlier() {
			l.onHandle(pkt[4], id, string(handle), f, &req)
		}
		return true
	}
	return false
}

// awaitEarlier reports whether the channel is still open once pkg/sftp has
// answered every earlier request.
func (l *writeLane) awaitEarlier() bool {
	return l.replies.awaitEarlier() == nil
}

func (l *writeLane) open(id uint32, name string, pflags uint32) {
	r := sftp.NewRequest("Put", name) // cleans the path as pkg/sftp does
	r.Flags = pflags
	op := "write"
	if pflags&fxfRead != 0 {
		op = "open"
	}
	up, err := l.sess.openUpload(r, op)
	if err != nil {
		l.answer(id, err)
		return
	}
	l.opened++
	handle := handlePrefix + strconv.FormatUint(l.opened, 10)
	l.files[handle] = &laneFile{up: up, path: r.Filepath}
	l.send(l.begin(fxpHandle, id).appendString(handle))
}

func (l *writeLane) onHandle(typ byte, id uint32, handle string, f *laneFile, req *fields) {
	switch typ {
	case fxpWrite:
		off := req.uint64()
		data := req.bytes()
		if req.bad {
			l.answer(id, fmt.Errorf("malformed write request: %w", sftp.ErrSSHFxBadMessage))
			return
		}
		_, err := f.up.WriteAt(data, int64(off))
		l.answerLater(id, err)
	case fxpClose:
		delete(l.files, handle)
		l.answer(id, f.up.Close())
	case fxpRead:
		l.answer(id, statusError(ErrWriteOnly))
	case fxpFstat:
		l.fstat(id, f)
	case fxpFsetstat:
		r := sftp.NewRequest("Setstat", f.path)
		r.Flags = req.uint32()
		if req.bad {
			l.answer(id, fmt.Errorf("malformed setstat request: %w", sftp.ErrSSHFxBadMessage))
			return
		}
		l.answer(id, l.sess.Filecmd(r))
	}
}

func (l *writeLane) fstat(id uint32, f *laneFile) {
	list, err := l.sess.Filelist(sftp.NewRequest("Stat", f.path))
	if err != nil {
		l.answer(id, err)
		return
	}
	infos := make([]os.FileInfo, 1)
	if n, _ := list.ListAt(infos, 0); n == 0 {
		l.answer(id, fmt.Errorf("stat %q: %w", f.path, ErrNotFound))
		return
	}
	l.send(l.begin(fxpAttrs, id).appendAttrs(infos[0]))
}

// idle sends the write answers held back: the client may wait for them.
func (l *writeLane) idle() {
	if l.held {
		l.held = false
		l.replies.flushHeld()
	}
}

// abort ends the uploads still open when the session ends, as pkg/sftp
// does with its own handles.
func (l *writeLane) abort(cause error) {
	if errors.Is(cause, io.EOF) || cause == nil {
		cause = io.ErrUnexpectedEOF
	}
	for handle, f := range l.files {
		delete(l.files, handle)
		f.up.TransferError(cause)
		_ = f.up.Close() // the upload records its own failure
	}
}

// answer sends the status of a request at once.
func (l *writeLane) answer(id uint32, err error) {
	l.send(l.begin(fxpStatus, id).appendStatus(err))
}

// answerLater sends a write's status with the next reply or before the
// guard waits for the client, whichever comes first.
func (l *writeLane) answerLater(id uint32, err error) {
	l.held = true
	// A failed write is remembered by the packer and ends the session's
	// reads too, so its error needs no handling here.
	_ = l.replies.writeLater(l.begin(fxpStatus, id).appendStatus(err).done())
}

func (l *writeLane) send(r *replyBuilder) {
	_, _ = l.replies.Write(r.done()) // as in answerLater
}

// begin starts a reply of type typ to request id in the lane's buffer.
func (l *writeLane) begin(typ byte, id uint32) *replyBuilder {
	l.reply = append(l.reply[:0], 0, 0, 0, 0, typ)
	l.reply = binary.BigEndian.AppendUint32(l.reply, id)
	return (*replyBuilder)(&l.reply)
}

// replyBuilder appends the fields of one reply.
type replyBuilder []byte

func (r *replyBuilder) appendString(s string) *replyBuilder {
	*r = binary.BigEndian.AppendUint32(*r, uint32(len(s)))
	*r = append(*r, s...)
	return r
}

// appendStatus appends err's SFTP status code and message; nil is OK.
func (r *replyBuilder) appendStatus(err error) *replyBuilder {
	if err == nil {
		*r = binary.BigEndian.AppendUint32(*r, 0)
		return r.appendString("").appendString("")
	}
	code := sftp.ErrSSHFxFailure
	errors.As(err, &code)
	*r = binary.BigEndian.AppendUint32(*r, uint32(code))
	return r.appendString(err.Error()).appendString("")
}

// appendAttrs appends fi's size, permissions and times.
func (r *replyBuilder) appendAttrs(fi os.FileInfo) *replyBuilder {
	mode := uint32(fi.Mode().Perm()) | modeRegular
	if fi.IsDir() {
		mode = uint32(fi.Mode().Perm()) | modeDir
	}
	mtime := uint32(fi.ModTime().Unix())
	if fi.ModTime().IsZero() {
		mtime = uint32(time.Now().Unix())
	}
	b := binary.BigEndian.AppendUint32(*r, attrSize|attrPermissions|attrTimes)
	b = binary.BigEndian.AppendUint64(b, uint64(fi.Size()))
	b = binary.BigEndian.AppendUint32(b, mode)
	b = binary.BigEndian.AppendUint32(b, mtime) // atime: the tree keeps none
	*r = binary.BigEndian.AppendUint32(b, mtime)
	return r
}

// done fills in the length and returns the whole packet.
func (r *replyBuilder) done() []byte {
	binary.BigEndian.PutUint32(*r, uint32(len(*r)-4))
	return *r
}

// fields reads the fields of a request in place; a short request sets bad.
type fields struct {
	b   []byte
	bad bool
}

func (f *fields) uint32() uint32 {
	if len(f.b) < 4 {
		f.bad = true
		return 0
	}
	v := binary.BigEndian.Uint32(f.b)
	f.b = f.b[4:]
	return v
}

func (f *fields) uint64() uint64 {
	if len(f.b) < 8 {
		f.bad = true
		return 0
	}
	v := binary.BigEndian.Uint64(f.b)
	f.b = f.b[8:]
	return v
}

// bytes returns a string field without copying it.
func (f *fields) bytes() []byte {
	n := f.uint32()
	if f.bad || uint64(n) > uint64(len(f.b)) {
		f.bad = true
		return nil
	}
	v := f.b[:n]
	f.b = f.b[n:]
	return v
}
