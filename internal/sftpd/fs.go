package sftpd

import (
	"context"
	"fmt"
	"github.com/airlock-gw/airlock/internal/names"
	"io"
	"log/slog"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"

	"github.com/airlock-gw/airlock/internal/clip"
	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
)

// The areas of a supplier's virtual tree. An upload-only supplier's "/" is
// the upload area; an egress supplier sees "/upload" and "/download".
type area int

const (
	areaRoot area = iota // "/" of an egress supplier: just the two directories
	areaUpload
	areaDownload
)

const (
	uploadDir   = "upload"
	downloadDir = "download"
)

// location is a resolved request path: an area and a clean absolute path
// inside it ("/" is the area's top).
type location struct {
	area area
	rel  string
}

// pendingStates are the transfers still on their way, which a supplier
// sees in the upload area for as long as they are (settled ones only for
// sftp.receipt_retention: see visible.go).
var pendingStates = []ledger.State{ledger.Receiving, ledger.Interrupted, ledger.Received, ledger.Scanning, ledger.Delivering}

// session is one SFTP subsystem of an authenticated supplier. It implements
// the pkg/sftp request handlers over the virtual tree.
type session struct {
	srv      *Server
	ctx      context.Context
	supplier *config.Supplier
	connID   string
	remoteIP string
	log      *slog.Logger
	refusals *refusals // the connection's

	mu         sync.Mutex
	held       map[string]ledger.Transfer // complete uploads under a temporary name, by transfer id
	uploads    int                        // uploads open now
	unrecorded map[*upload]bool           // open uploads the ledger does not know of yet

	uploadsMu     sync.Mutex
	uploadSession ledger.UploadSession // recorded at the session's first upload

	idledOut atomic.Bool // the session was closed for want of requests
	live     *liveConn   // its connection, revoked or not

	handles   int    // open now; guarded by srv.handles.mu
	closeConn func() // ends the connection the session is on
}

var (
	_ sftp.FileReader       = (*session)(nil)
	_ sftp.OpenFileWriter   = (*session)(nil)
	_ sftp.FileCmder        = (*session)(nil)
	_ sftp.LstatFileLister  = (*session)(nil)
	_ sftp.StatVFSFileCmder = (*session)(nil)
)

func (s *session) handlers() sftp.Handlers {
	return sftp.Handlers{FileGet: s, FilePut: s, FileCmd: s, FileList: s}
}

// resolve maps a request path (already cleaned by pkg/sftp) to a location,
// applying the name policy.
func (s *session) resolve(p string) (location, error) {
	if p == escapeMarker {
		return location{}, ErrEscape
	}
	if err := names.CheckPath(p); err != nil {
		return location{}, err
	}
	if s.supplier.Egress == nil {
		return location{area: areaUpload, rel: p}, nil
	}
	elems := names.Split(p)
	if len(elems) == 0 {
		return location{area: areaRoot, rel: "/"}, nil
	}
	rel := "/" + strings.Join(elems[1:], "/")
	switch elems[0] {
	case uploadDir:
		return location{area: areaUpload, rel: rel}, nil
	case downloadDir:
		return location{area: areaDownload, rel: rel}, nil
	}
	return location{}, ErrNotFound
}

// refuse turns a failed request into the SFTP status the client sees. Policy
// refusals (escape attempts, refused names, writes to read-only areas…) are
// also logged, counted and audited; ordinary answers such as "no such file"
// to a client probing before an upload are not.
func (s *session) refuse(op, p string, err error) error {
	err = opError(op, displayPath(p), err)
	c := classOf(err)
	status := &codedError{err: err, code: c.code, shown: c.shown}
	switch {
	case c.reason == internalClass.reason:
		s.log.Error("request failed", "op", op, "path", displayPath(p), "err", err)
	case !c.policy:
		s.log.Debug("request failed", "op", op, "path", displayPath(p), "reason", c.reason, "err", err)
	default:
		s.refusals.record(s.ctx, "request refused", map[string]string{"op": op, "path": displayPath(p), "reason": c.reason, "error": err.Error()})
	}
	return status
}

// displayPath quotes a request path for messages, clipped: a client may
// send a path of up to the packet size, which the name policy refuses.
func displayPath(p string) string {
	if p == escapeMarker {
		return "(outside the home directory)"
	}
	return fmt.Sprintf("%q", clip.String(p, names.MaxPath))
}

// Fileread serves downloads: only the egress area is readable. The file
// lane opens files before pkg/sftp sees them and calls this, as it calls
// openUpload; pkg/sftp would call these only for a request the lane
// declined.
func (s *session) Fileread(r *sftp.Request) (io.ReaderAt, error) {
	loc, err := s.resolve(r.Filepath)
	if err != nil {
		return nil, s.refuse("read", r.Filepath, err)
	}
	release, err := s.takeHandle()
	if err != nil {
		return nil, s.refuse("read", r.Filepath, err)
	}
	var rd io.ReaderAt
	switch loc.area {
	case areaDownload:
		rd, err = s.openDownload(loc.rel)
	case areaUpload:
		rd, err = s.openReceipt(loc.rel)
	default:
		err = ErrIsDir
	}
	if err != nil {
		release()
		return nil, s.refuse("read", r.Filepath, err)
	}
	return &handleReader{ReaderAt: rd, release: release}, nil
}

// Filewrite starts an upload.
func (s *session) Filewrite(r *sftp.Request) (io.WriterAt, error) {
	u, err := s.openUpload(r, "write")
	if err != nil {
		return nil, err // not a nil *upload in an interface
	}
	return u, nil
}

// OpenFile serves clients that open for reading and writing at once; the
// upload then refuses reads.
func (s *session) OpenFile(r *sftp.Request) (sftp.WriterAtReaderAt, error) {
	u, err := s.openUpload(r, "open")
	if err != nil {
		return nil, err
	}
	return u, nil
}

// openUpload starts an upload for a request named op in refusals.
func (s *session) openUpload(r *sftp.Request, op string) (*upload, error) {
	release, err := s.takeHandle()
	if err != nil {
		return nil, s.refuse(op, r.Filepath, err)
	}
	u, err := s.startUpload(r)
	if err != nil {
		release()
		return nil, s.refuse(op, r.Filepath, err)
	}
	u.releaseHandle = release
	return u, nil
}

// Filecmd handles the commands that change the tree.
func (s *session) Filecmd(r *sftp.Request) error {
	op := strings.ToLower(r.Method)
	loc, err := s.resolve(r.Filepath)
	if err == nil && (r.Method == "Rename" || r.Method == "Link" || r.Method == "Symlink") {
		if _, terr := s.resolve(r.Target); terr != nil {
			return s.refuse(op, r.Target, terr)
		}
	}
	if err != nil {
		return s.refuse(op, r.Filepath, err)
	}
	switch {
	case r.Method == "Link" || r.Method == "Symlink":
		err = fmt.Errorf("links: %w", ErrUnsupported)
	case loc.area == areaDownload || loc.area == areaRoot:
		err = ErrReadOnly
	default:
		err = s.uploadCmd(r, loc)
	}
	if err != nil {
		return s.refuse(op, r.Filepath, err)
	}
	return nil
}

func (s *session) uploadCmd(r *sftp.Request, loc location) error {
	s.recordOwn()
	switch r.Method {
	case "Setstat":
		return s.setstat(r, loc)
	case "Mkdir":
		return s.mkdir(loc.rel)
	case "Rmdir":
		return s.rmdir(loc.rel)
	case "Rename":
		target, _ := s.resolve(r.Target)
		if target.area != areaUpload {
			return ErrReadOnly
		}
		return s.rename(loc.rel, target.rel)
	case "Remove":
		return s.remove(loc.rel)
	}
	return fmt.Errorf("%s: %w", r.Method, ErrUnsupported)
}

// Filelist serves List, Stat and Readlink.
func (s *session) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	op := strings.ToLower(r.Method)
	loc, err := s.resolve(r.Filepath)
	if err != nil {
		return nil, s.refuse(op, r.Filepath, err)
	}
	if loc.area == areaUpload {
		s.recordOwn()
	}
	switch r.Method {
	case "List":
		l, err := s.openDir(loc)
		if err != nil {
			return nil, s.refuse(op, r.Filepath, err)
		}
		return l, nil
	case "Stat":
		fi, err := s.stat(loc)
		if err != nil {
			return nil, s.refuse(op, r.Filepath, err)
		}
		return listerAt{fi}, nil
	}
	return nil, s.refuse(op, r.Filepath, fmt.Errorf("%s: %w", r.Method, ErrUnsupported))
}

// Lstat is Stat: the tree has no links.
func (s *session) Lstat(r *sftp.Request) (sftp.ListerAt, error) {
	r.Method = "Stat"
	return s.Filelist(r)
}

func (s *session) list(loc location) ([]os.FileInfo, error) {
	switch loc.area {
	case areaRoot:
		now := time.Now()
		return []os.FileInfo{dirInfo(uploadDir, now), dirInfo(downloadDir, now)}, nil
	case areaDownload:
		return s.listDownload(loc.rel)
	}
	return s.listUpload(loc.rel)
}

func (s *session) stat(loc location) (os.FileInfo, error) {
	switch {
	case loc.rel == "/":
		return dirInfo(path.Base(loc.rel), time.Now()), nil
	case loc.area == areaDownload:
		return s.statDownload(loc.rel)
	}
	return s.statUpload(loc.rel)
}

// listerAt serves a precomputed listing.
type listerAt []os.FileInfo

func (l listerAt) ListAt(dst []os.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(dst, l[off:])
	if n < len(dst) {
		return n, io.EOF
	}
	return n, nil
}

// fileInfo is a synthetic os.FileInfo.
type fileInfo struct {
	name    string
	size    int64
	mode    os.FileMode
	modTime time.Time
}

func (f *fileInfo) Name() string       { return f.name }
func (f *fileInfo) Size() int64        { return f.size }
func (f *fileInfo) Mode() os.FileMode  { return f.mode }
func (f *fileInfo) ModTime() time.Time { return f.modTime }
func (f *fileInfo) IsDir() bool        { return f.mode.IsDir() }
func (f *fileInfo) Sys() any           { return nil }

func dirInfo(name string, mod time.Time) os.FileInfo {
	return &fileInfo{name: name, mode: os.ModeDir | 0o755, modTime: mod}
}

func sortInfos(infos []os.FileInfo) []os.FileInfo {
	sort.Slice(infos, func(i, j int) bool { return infos[i].Name() < infos[j].Name() })
	return infos
}
