package sftpd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/pkg/sftp"
)

// fileLane serves open files in the goroutine that reads the client's
// requests, in the order the client sent them.
//
// pkg/sftp allocates every request afresh and hands it to one of eight
// workers, whose replies are put back in order after; an upload's 32 KiB
// writes then arrive at the file out of order, most of them to be copied
// into the reorder window, and every read allocates its 32 KiB of data. The
// lane opens files itself and takes every request on their handles (read,
// write, close, fstat, fsetstat) straight from the guard's buffer, as
// OpenSSH's sftp-server does. It also answers INIT and the limits request,
// which pkg/sftp cannot announce. Everything else goes on to pkg/sftp, and
// the session's handlers decide alike for both: the lane calls them.
//
// Writes ahead of the stream still pass through the reorder window, but no
// later request can fill a gap while the lane waits for it: a client that
// sends writes further out of order than the window holds sees its upload
// fail after the stall timeout, as with pkg/sftp's workers all waiting.
type fileLane struct {
	sess    *session
	replies *replyPacker
	files   map[string]*laneFile // open files by handle
	opened  uint64               // handles given out
	held    bool                 // write answers wait in the packer
	reply   []byte               // the reply being encoded
	started bool                 // the client has sent INIT
}

// ErrBeforeInit ends a session whose client sends a request before INIT,
// the version exchange, as OpenSSH's server does.
var ErrBeforeInit = errors.New("request before the SFTP version exchange")

// laneFile is a file open on the lane: an upload or a download.
type laneFile struct {
	handle string
	path   string      // the path it was opened with, cleaned
	up     *upload     // an upload, or
	rd     io.ReaderAt // a download
}

// The limits the lane announces (limits@openssh.com) and keeps. A client
// that knows them reads and writes up to maxData bytes a request where it
// would otherwise ask for 32 KiB: a small file goes in one write, one round
// trip fewer, and a large transfer takes an eighth of the requests and
// answers. A download of 1 GiB cost a third less CPU so.
const (
	limitsExtension = "limits@openssh.com"
	// maxPacketLength is the longest request pkg/sftp takes; the guard
	// holds one a little longer (maxPacket).
	maxPacketLength = 256 << 10
	// maxData bounds the data of a read's answer or a write, leaving room
	// for the packet's other fields.
	maxData = maxPacketLength - 1024
	// maxOpenHandles: a session may have this many uploads open at once.
	maxOpenHandles = maxSessionUploads
)

// sftpVersion is the protocol version airlock speaks, whatever the client
// offers, as pkg/sftp and OpenSSH answer.
const sftpVersion = 3

// extensions are the ones announced with the version: pkg/sftp's, which it
// serves, and the limits, which the lane answers. Not hardlink@openssh.com,
// which pkg/sftp would announce: the tree has no links, and a client told
// of none does not try one (OpenSSH's ln says the server lacks it).
var extensions = [...]struct{ name, data string }{
	{"posix-rename@openssh.com", "1"},
	{"statvfs@openssh.com", "2"},
	{limitsExtension, "1"},
}

var _ inlineServer = (*fileLane)(nil)

// SFTP v3 packet types and flags the lane serves beyond those the guard
// names (draft-ietf-secsh-filexfer-02).
const (
	fxpInit     = 1
	fxpVersion  = 2
	fxpClose    = 4
	fxpRead     = 5
	fxpWrite    = 6
	fxpFstat    = 8
	fxpFsetstat = 10
	fxpReaddir  = 12
	fxpRealpath = 16
	fxpStatus   = 101
	fxpHandle   = 102
	fxpName     = 104
	fxpAttrs    = 105
	// fxpExtended is in guard.go.
	fxpExtendedReply = 201
	// fxpData is SSH_FXP_DATA, in replies.go.

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
const handlePrefix = "f"

func newFileLane(sess *session, replies *replyPacker) *fileLane {
	return &fileLane{sess: sess, replies: replies, files: make(map[string]*laneFile)}
}

func (l *fileLane) serve(pkt []byte) (bool, error) {
	if !l.started && pkt[4] != fxpInit {
		return false, fmt.Errorf("%w: packet type %d", ErrBeforeInit, pkt[4])
	}
	req := fields{b: pkt[5:]}
	id := req.uint32() // the client's version, in an INIT
	switch pkt[4] {
	case fxpInit:
		l.started = true
		// The first request: pkg/sftp keeps nothing from it, and its
		// answer cannot announce the limits.
		if l.awaitEarlier() {
			l.send(l.begin(fxpVersion, sftpVersion).appendExtensions())
		}
		return true, nil
	case fxpExtended:
		if name := req.bytes(); req.bad || string(name) != limitsExtension {
			return false, nil
		}
		if l.awaitEarlier() {
			l.send(l.begin(fxpExtendedReply, id).appendUint64s(maxPacketLength, maxData, maxData, maxOpenHandles))
		}
		return true, nil
	case fxpOpen:
		name := req.bytes()
		pflags := req.uint32()
		if req.bad || pflags&(fxfRead|writeFlags) == 0 {
			return false, nil
		}
		if l.awaitEarlier() {
			l.open(id, string(name), pflags)
		}
		return true, nil
	case fxpClose, fxpRead, fxpWrite, fxpFstat, fxpFsetstat:
		handle := req.bytes()
		f, mine := l.files[string(handle)]
		if req.bad || !mine {
			return false, nil
		}
		if l.awaitEarlier() {
			l.onHandle(pkt[4], id, f, &req)
		}
		return true, nil
	case fxpRealpath:
		name := req.bytes()
		if req.bad {
			return false, nil
		}
		if l.awaitEarlier() {
			// As pkg/sftp answers it; clients ask it first, and an
			// idle session then needs no pkg/sftp at all (session.serve).
			p := sftp.NewRequest("Realpath", string(name)).Filepath
			l.send(l.begin(fxpName, id).appendUint32s(1).appendString(p).appendString(p).appendUint32s(0))
		}
		return true, nil
	case fxpLstat, fxpSetstat, fxpOpendir, fxpReaddir, fxpRemove, fxpMkdir, fxpRmdir,
		fxpStat, fxpRename, fxpReadlink, fxpSymlink:
		return false, nil // pkg/sftp's
	}
	return l.unknown(id, pkt[4], req.bad)
}

// unknown answers a packet of a type that is no request of SFTP v3, which
// pkg/sftp would answer by ending the session, with an unsupported status;
// one too short to carry a request id ends the session.
func (l *fileLane) unknown(id uint32, typ byte, bad bool) (bool, error) {
	if bad {
		return false, fmt.Errorf("packet of unknown type %d without a request id: %w", typ, sftp.ErrSSHFxBadMessage)
	}
	if l.awaitEarlier() {
		l.answer(id, fmt.Errorf("packet type %d: %w", typ, sftp.ErrSSHFxOpUnsupported))
	}
	return true, nil
}

// awaitEarlier reports whether the channel is still open once pkg/sftp has
// answered every earlier request.
func (l *fileLane) awaitEarlier() bool {
	return l.replies.awaitEarlier() == nil
}

func (l *fileLane) open(id uint32, name string, pflags uint32) {
	r := sftp.NewRequest("Get", name) // cleans the path as pkg/sftp does
	r.Flags = pflags
	f := &laneFile{path: r.Filepath}
	var err error
	switch {
	case pflags&writeFlags == 0:
		f.rd, err = l.sess.Fileread(r)
	case pflags&fxfRead != 0:
		r.Method = "Open"
		f.up, err = l.sess.openUpload(r, "open")
	default:
		r.Method = "Put"
		f.up, err = l.sess.openUpload(r, "write")
	}
	if err != nil {
		l.answer(id, err)
		return
	}
	l.opened++
	f.handle = handlePrefix + strconv.FormatUint(l.opened, 10)
	l.files[f.handle] = f
	l.send(l.begin(fxpHandle, id).appendString(f.handle))
}

func (l *fileLane) onHandle(typ byte, id uint32, f *laneFile, req *fields) {
	switch typ {
	case fxpRead:
		off := req.uint64()
		n := req.uint32()
		switch {
		case req.bad:
			l.answer(id, malformed("read"))
		case f.up != nil:
			l.answer(id, statusError(ErrWriteOnly))
		default:
			l.read(id, f.rd, int64(off), min(int(n), maxData))
		}
	case fxpWrite:
		off := req.uint64()
		data := req.bytes()
		switch {
		case req.bad:
			l.answer(id, malformed("write"))
		case f.up == nil:
			l.answer(id, statusError(fmt.Errorf("downloads: %w", ErrReadOnly)))
		default:
			_, err := f.up.WriteAt(data, int64(off))
			l.answerLater(id, err)
		}
	case fxpClose:
		delete(l.files, f.handle)
		l.answer(id, f.close())
	case fxpFstat:
		l.fstat(id, f)
	case fxpFsetstat:
		r := sftp.NewRequest("Setstat", f.path)
		r.Flags = req.uint32()
		r.Attrs = slices.Clone(req.b)
		if req.bad {
			l.answer(id, malformed("setstat"))
			return
		}
		l.answer(id, l.sess.Filecmd(r))
	}
}

// malformed is the answer to a request on a handle cut short.
func malformed(request string) error {
	return fmt.Errorf("malformed %s request: %w", request, sftp.ErrSSHFxBadMessage)
}

// read answers a read of n bytes at off with the data there, or with EOF
// when there is none.
func (l *fileLane) read(id uint32, rd io.ReaderAt, off int64, n int) {
	r := l.begin(fxpData, id)
	*r = binary.BigEndian.AppendUint32(*r, 0) // the data's length, below
	start := len(*r)
	*r = slices.Grow(*r, n)[:start+n]
	got, err := rd.ReadAt((*r)[start:], off)
	if err != nil && (!errors.Is(err, io.EOF) || got == 0) {
		l.answer(id, err)
		return
	}
	*r = (*r)[:start+got]
	binary.BigEndian.PutUint32((*r)[start-4:], uint32(got))
	l.send(r)
}

// close ends the file: an upload is settled, a download's reader let go.
func (f *laneFile) close() error {
	if f.up != nil {
		return f.up.Close()
	}
	if c, ok := f.rd.(io.Closer); ok {
		return statusError(c.Close())
	}
	return nil
}

func (l *fileLane) fstat(id uint32, f *laneFile) {
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
func (l *fileLane) idle() {
	if l.held {
		l.held = false
		l.replies.flushHeld()
	}
}

// abort ends the files still open when the session ends, as pkg/sftp does
// with its own handles.
func (l *fileLane) abort(cause error) {
	if errors.Is(cause, io.EOF) || cause == nil {
		cause = io.ErrUnexpectedEOF
	}
	for handle, f := range l.files {
		delete(l.files, handle)
		if f.up != nil {
			f.up.TransferError(cause)
		}
		_ = f.close() // an upload records its own failure
	}
}

// answer sends the status of a request at once.
func (l *fileLane) answer(id uint32, err error) {
	l.send(l.begin(fxpStatus, id).appendStatus(err))
}

// answerLater sends a write's status with the next reply or before the
// guard waits for the client, whichever comes first.
func (l *fileLane) answerLater(id uint32, err error) {
	l.held = true
	// A failed write is remembered by the packer and ends the session's
	// reads too, so its error needs no handling here.
	_ = l.replies.writeLater(l.begin(fxpStatus, id).appendStatus(err).done())
}

func (l *fileLane) send(r *replyBuilder) {
	_, _ = l.replies.Write(r.done()) // as in answerLater
}

// begin starts a reply of type typ to request id in the lane's buffer.
func (l *fileLane) begin(typ byte, id uint32) *replyBuilder {
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

func (r *replyBuilder) appendExtensions() *replyBuilder {
	for _, e := range extensions {
		r.appendString(e.name).appendString(e.data)
	}
	return r
}

func (r *replyBuilder) appendUint32s(vs ...uint32) *replyBuilder {
	for _, v := range vs {
		*r = binary.BigEndian.AppendUint32(*r, v)
	}
	return r
}

func (r *replyBuilder) appendUint64s(vs ...uint64) *replyBuilder {
	for _, v := range vs {
		*r = binary.BigEndian.AppendUint64(*r, v)
	}
	return r
}

// appendStatus appends err's SFTP status code and message; nil is OK.
func (r *replyBuilder) appendStatus(err error) *replyBuilder {
	if err == nil {
		*r = binary.BigEndian.AppendUint32(*r, 0)
		return r.appendString("").appendString("")
	}
	code := sftp.ErrSSHFxFailure
	if errors.Is(err, io.EOF) {
		code = sftp.ErrSSHFxEOF
	}
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

// take returns the next n bytes, or nil when fewer are left.
func (f *fields) take(n uint64) []byte {
	if f.bad || n > uint64(len(f.b)) {
		f.bad = true
		return nil
	}
	v := f.b[:n]
	f.b = f.b[n:]
	return v
}

func (f *fields) uint32() uint32 {
	if b := f.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (f *fields) uint64() uint64 {
	if b := f.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// bytes returns a string field without copying it.
func (f *fields) bytes() []byte {
	return f.take(uint64(f.uint32()))
}
