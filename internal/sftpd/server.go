// Package sftpd is airlock's SFTP front door: SSH transport and public-key
// authentication, and a virtual, chrooted file system in which every upload
// streams into the landing store and is recorded in the ledger.
package sftpd

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/airlock-gw/airlock/internal/clip"
	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/storage"
)

// Ledger is what the SFTP server records transfers and audit events in.
type Ledger interface {
	Begin(ctx context.Context, t ledger.Transfer, ev ledger.Event) (ledger.Transfer, error)
	Record(ctx context.Context, t ledger.Transfer, start ledger.Event, to ledger.State, ch ledger.Change, ev ledger.Event) (ledger.Transfer, error)
	Get(ctx context.Context, id string) (ledger.Transfer, error)
	StartUploads(ctx context.Context, node, supplier string) (ledger.UploadSession, error)
	EndUploads(ctx context.Context, id string) error
	UploadSessions(ctx context.Context, node string) ([]ledger.UploadSession, error)
	Advance(ctx context.Context, id string, from []ledger.State, to ledger.State, ch ledger.Change, ev ledger.Event) (ledger.Transfer, error)
	List(ctx context.Context, f ledger.Filter) ([]ledger.Transfer, error)
	Append(ctx context.Context, ev ledger.Event) (ledger.Event, error)
	MakeDir(ctx context.Context, supplier, p string, ev ledger.Event) error
	RemoveDir(ctx context.Context, supplier, p string, ev ledger.Event) error
	Dirs(ctx context.Context, supplier string, limit int) ([]string, error)
	SetMTime(ctx context.Context, id string, mtime time.Time, ev ledger.Event) (ledger.Transfer, bool, error)
	Hide(ctx context.Context, id string, ev ledger.Event) (ledger.Transfer, bool, error)
	ResumePoint(ctx context.Context, id string) (ledger.ResumePoint, error)
	NodesSeen(ctx context.Context) (map[string]time.Time, error)
}

var _ Ledger = (*ledger.Ledger)(nil)

// Options configure a Server.
type Options struct {
	Config    *config.Config
	Suppliers func() *config.Suppliers // the current set; swapped on reload
	Ledger    Ledger
	Landing   *storage.Store
	Logger    *slog.Logger
	Metrics   *Metrics

	// ReorderWindow bounds the bytes buffered per upload for out-of-order
	// writes (default 4 MiB); ReorderStall is how long a write waits for a
	// gap before the upload fails (default 30 s).
	ReorderWindow int
	ReorderStall  time.Duration
	// MemoryWait is how long an upload waits for the upload memory budget
	// before it is refused as busy (default 1 minute).
	MemoryWait time.Duration
	// Bans keeps failed logins and bans where all nodes see them (the
	// ledger); nil keeps them in this process's memory.
	Bans BanStore
	// Handoff, when set, runs in the transaction that records an upload as
	// received: the pipeline queues its work there.
	Handoff func(ctx context.Context, tx *sql.Tx, tr ledger.Transfer) error
}

// Server accepts SFTP connections.
type Server struct {
	cfg       *ssh.ServerConfig
	suppliers func() *config.Suppliers
	ledger    Ledger
	landing   *storage.Store
	log       *slog.Logger
	metrics   *Metrics

	handoff          func(ctx context.Context, tx *sql.Tx, tr ledger.Transfer) error
	receiptRetention time.Duration
	resumeWindow     time.Duration
	rescueAfter      time.Duration // a node silent this long has stopped (see recoverSilentNodes)
	node             string
	maxFileSize      int64
	isTempName       func(name string) bool // held until renamed (sftp.temp_patterns)
	reorderWindow    int
	reorderStall     time.Duration
	handshakeTimeout time.Duration
	idleTimeout      time.Duration
	keepalive        time.Duration
	maxAuthTries     int
	now              func() time.Time
	recordAfter      time.Duration // see the constant
	admission        *admission
	bans             *banBook
	proxyProtocol    *config.ProxyProtocol // nil: no PROXY protocol headers

	memory      *memoryBudget // for upload buffers
	handles     *handleLimits
	maxChannels int           // session channels open at once on a connection
	writeStall  time.Duration // how long a reply may wait for the client to read
	reclaim     memoryReturn  // after stalled connections are closed

	live    liveConns // authenticated connections, for revocation
	dirs    dirSet
	egress  storage.Cache // egress stores, open across sessions
	wg      sync.WaitGroup
	closing chan struct{} // closed when the drain closes the sessions

	drainTimeout time.Duration
	draining     atomic.Bool
	conns        sync.WaitGroup // connections being served
	open         atomic.Int64   // their number
}

// New builds a server, loading or generating its host keys.
func New(opts Options) (*Server, error) {
	signers, err := LoadHostKeys(opts.Config.SFTP.HostKeys)
	if err != nil {
		return nil, err
	}
	sc := opts.Config.SFTP
	s := &Server{
		suppliers:        opts.Suppliers,
		ledger:           opts.Ledger,
		landing:          opts.Landing,
		log:              opts.Logger,
		metrics:          opts.Metrics,
		handoff:          opts.Handoff,
		receiptRetention: opts.Config.SFTP.ReceiptRetention,
		resumeWindow:     opts.Config.SFTP.ResumeWindow,
		rescueAfter:      opts.Config.Pipeline.RescueAfter,
		node:             opts.Config.Node,
		maxFileSize:      int64(opts.Config.Limits.MaxFileSize),
		isTempName:       opts.Config.IsTempName,
		reorderWindow:    cmp.Or(opts.ReorderWindow, 4<<20),
		reorderStall:     cmp.Or(opts.ReorderStall, 30*time.Second),
		handshakeTimeout: cmp.Or(sc.HandshakeTimeout, 30*time.Second),
		idleTimeout:      cmp.Or(sc.IdleTimeout, 15*time.Minute),
		keepalive:        sc.KeepaliveInterval,
		maxAuthTries:     cmp.Or(sc.MaxAuthTries, 6),
		now:              time.Now,
		recordAfter:      recordAfter,
		bans:             newBanBook(cmp.Or[BanStore](opts.Bans, NewMemoryBans()), opts.Config.Node, banRuleOf(sc)),
		proxyProtocol:    sc.ProxyProtocol,
		closing:          make(chan struct{}),
		drainTimeout:     sc.DrainTimeout,
		handles: newHandleLimits(cmp.Or(sc.MaxHandlesPerSession, 256), cmp.Or(sc.MaxHandlesPerSupplier, 1024),
			nodeHandleLimit(sc.MaxHandlesPerNode)),
		maxChannels: cmp.Or(sc.MaxChannelsPerConnection, 4),
		writeStall:  cmp.Or(sc.WriteStallTimeout, time.Minute),
	}
	s.admission = newAdmission(admissionLimitsOf(sc), s.bans)
	s.memory = newMemoryBudget(int64(cmp.Or(opts.Config.Limits.UploadMemory, 512<<20)),
		int64(s.reorderWindow)+s.landing.WriteBuffer(s.maxFileSize), cmp.Or(opts.MemoryWait, time.Minute))
	s.cfg = s.sshConfig(signers, sc.Algorithms)
	return s, nil
}

// Serve accepts connections on ln until ctx ends. Then it drains: ln is
// closed at once, the sessions open may run on for the drain timeout, those
// left are closed, and Serve returns once every session has settled its
// bookkeeping.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	// The sessions outlive ctx by the drain.
	sessCtx, endSessions := context.WithCancel(context.WithoutCancel(ctx))
	defer endSessions()
	stopAccepting := context.AfterFunc(ctx, func() {
		s.startDraining()
		ln.Close()
	})
	defer stopAccepting()
	s.wg.Go(func() { s.revalidateEvery(sessCtx, revalidateInterval) })
	s.wg.Go(func() { s.sweepEvery(sessCtx, sweepInterval) })
	s.wg.Go(func() { s.syncBans(sessCtx) })
	s.log.Info("sftp listening", "addr", ln.Addr().String(), "max_handles_per_node", s.handles.perNode)
	var backoff acceptBackoff
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				open, left := s.drain()
				s.closeSessions(ctx, endSessions, open, left)
				_ = s.egress.Close() // read-only stores: nothing to lose
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("accept: %w", err)
			}
			// Out of descriptors (EMFILE) or any other failure: the
			// gateway must go on serving the connections it has.
			s.metrics.acceptErrors.Inc()
			s.log.Warn("accept failed; backing off", "err", err, "retry_in", backoff.next())
			backoff.wait(ctx)
			continue
		}
		backoff.reset()
		s.wg.Add(1)
		s.conns.Add(1)
		s.open.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.conns.Done()
			defer s.open.Add(-1)
			s.handleConn(sessCtx, nc)
		}()
	}
}

// RecoverInterrupted fails the uploads this node was receiving when it last
// stopped (a crash or kill) and removes their staged bytes, so that nothing
// half-written is ever handed on. It runs before Serve.
func (s *Server) RecoverInterrupted(ctx context.Context) error {
	return s.recoverNode(ctx, s.node, "interrupted: airlock stopped during the upload")
}

// recoverNode fails the uploads node was receiving, with reason, and
// removes what its upload sessions left in landing unrecorded: node has
// stopped, this process's own before it started or another that went
// silent (see recoverSilentNodes).
func (s *Server) recoverNode(ctx context.Context, node, reason string) error {
	trs, err := s.ledger.List(ctx, ledger.Filter{States: []ledger.State{ledger.Receiving}, Node: node})
	if err != nil {
		return fmt.Errorf("recover interrupted uploads: %w", err)
	}
	for _, tr := range trs {
		if _, err := s.landing.DeletePrefix(ctx, tr.LandingKey); err != nil {
			return fmt.Errorf("recover upload %s: %w", tr.ID, err)
		}
		ev := ledger.Event{Kind: "upload.fail", Actor: "system", Detail: map[string]string{"reason": "interrupted", "error": reason, "node": node}}
		if _, err := s.ledger.Advance(ctx, tr.ID, []ledger.State{ledger.Receiving}, ledger.Failed, ledger.Change{Error: &reason}, ev); err != nil {
			return fmt.Errorf("recover upload %s: %w", tr.ID, err)
		}
		s.log.Warn("interrupted upload failed", "transfer_id", tr.ID, "user", tr.Supplier, "path", tr.Path, "node", node)
	}
	sessions, err := s.ledger.UploadSessions(ctx, node)
	if err != nil {
		return fmt.Errorf("recover interrupted uploads: %w", err)
	}
	for _, us := range sessions {
		if err := s.removeUnrecorded(ctx, us); err != nil {
			return fmt.Errorf("recover upload session %s: %w", us.ID, err)
		}
		if err := s.ledger.EndUploads(ctx, us.ID); err != nil {
			return fmt.Errorf("recover upload session %s: %w", us.ID, err)
		}
	}
	return nil
}

// removeUnrecorded deletes what an upload session left in landing that no
// transfer accounts for: uploads whose bytes had landed when the process
// stopped, a moment before they were to be recorded, and which their
// clients were never told had arrived.
func (s *Server) removeUnrecorded(ctx context.Context, us ledger.UploadSession) error {
	prefix := us.LandingPrefix()
	entries, err := s.landing.List(ctx, prefix)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir {
			continue
		}
		switch _, err := s.ledger.Get(ctx, strings.TrimPrefix(e.Key, prefix)); {
		case err == nil:
			continue // recorded: the pipeline or the recovery above has it
		case !errors.Is(err, ledger.ErrNotFound):
			return err
		}
		if err := s.landing.Delete(ctx, e.Key); err != nil {
			return err
		}
		s.log.Warn("interrupted upload removed: it had landed but was not recorded", "user", us.Supplier, "landing_key", e.Key, "size", e.Size)
		s.audit(ctx, ledger.Event{Kind: "upload.discard", Actor: "system",
			Detail: map[string]string{"reason": "interrupted", "supplier": us.Supplier, "landing_key": e.Key, "size": fmt.Sprint(e.Size)}})
	}
	return nil
}

func (s *Server) handleConn(ctx context.Context, nc net.Conn) {
	defer nc.Close()
	// Ends a handshake still under way when the drain closes the sessions.
	defer context.AfterFunc(ctx, func() { nc.Close() })()
	connID := rand.Text()[:12]
	s.metrics.connections.Inc()
	nc, proxy, err := s.unwrapProxy(nc)
	remote := remoteIP(nc.RemoteAddr())
	log := s.log.With("conn_id", connID, "remote_ip", remote.String())
	if err != nil {
		s.refuseProxyHeader(log, err)
		return
	}
	connect := ledger.Event{Kind: "connect", Actor: "anonymous", RemoteIP: remote.String(), ConnID: connID}
	if proxy.IsValid() {
		log = log.With("proxy_ip", proxy.String())
		connect.Detail = map[string]string{"proxy_ip": proxy.String()}
	}
	reason, pressured, ok := s.admission.admit(remote)
	if !ok {
		// Not audited: a banned address could otherwise flood the ledger.
		log.Warn("connection refused", "reason", reason)
		s.metrics.connectionsRefused.WithLabelValues(reason).Inc()
		return
	}
	defer s.admission.release(remote)
	s.audit(ctx, connect)

	deadline := handshakeDeadline(s.handshakeTimeout, pressured)
	_ = nc.SetDeadline(s.now().Add(deadline))
	var tried atomic.Bool
	sconn, chans, reqs, err := ssh.NewServerConn(nc, s.connConfig(ctx, connID, log, &tried))
	s.admission.authenticated(remote)
	if err != nil {
		s.droppedBeforeLogin(ctx, remote, connID, log, err, deadline, pressured, tried.Load())
		return
	}
	defer sconn.Close()
	_ = nc.SetDeadline(time.Time{})

	user := sconn.User()
	log = log.With("user", user)
	key, _ := sconn.Permissions.ExtraData[loginKey{}].(ssh.PublicKey)
	live := &liveConn{supplier: user, key: key, fingerprint: sconn.Permissions.Extensions[extFingerprint], ip: remote, log: log, close: sconn.Close}
	defer s.live.remove(connID)
	supplier, ok := s.login(ctx, connID, live)
	if !ok { // changed by a reload since authentication
		return
	}
	if err := s.dirs.load(ctx, s.ledger, user); err != nil {
		log.Error("closing: cannot read the supplier's directories", "err", err)
		return
	}
	s.metrics.sessions.Inc()
	defer s.metrics.sessions.Dec()
	log.Info("logged in", "key", live.fingerprint)

	connCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The drain's close of the sessions ends ctx.
	context.AfterFunc(connCtx, func() { _ = sconn.Close() })
	refused := newRefusals(s, log, supplier.Name, remote.String(), connID)
	defer refused.close(ctx)
	go refused.serveGlobalRequests(connCtx, reqs)
	if s.keepalive > 0 {
		s.keepAlive(connCtx, sconn, log)
	}

	idle := &connIdle{since: s.now()}
	s.closeIdleConn(connCtx, sconn, idle, log)

	var sessions sync.WaitGroup
	var channels atomic.Int64 // open now, whether or not they started SFTP
	for nch := range chans {
		if nch.ChannelType() != "session" {
			_ = nch.Reject(ssh.Prohibited, "only SFTP sessions are allowed")
			refused.sshRequest(connCtx, "channel", nch.ChannelType())
			continue
		}
		if channels.Load() >= int64(s.maxChannels) {
			s.refuseChannel(ctx, nch, refused)
			continue
		}
		ch, chReqs, err := nch.Accept()
		if err != nil {
			log.Warn("accept channel", "err", err)
			continue
		}
		sessions.Add(1)
		channels.Add(1)
		go func() {
			defer sessions.Done()
			defer channels.Add(-1)
			s.serveChannel(connCtx, ch, chReqs, idle, &session{
				srv: s, ctx: connCtx, closeConn: cancel, supplier: supplier, connID: connID, remoteIP: remote.String(), log: log,
				refusals: refused, held: make(map[string]ledger.Transfer), live: live,
			})
		}()
	}
	sessions.Wait()
	log.Info("connection closed")
}

// connIdle tracks whether a connection has any SFTP session running, and
// since when it has had none.
type connIdle struct {
	mu       sync.Mutex
	sessions int
	since    time.Time // when the last session closed, or login
}

func (c *connIdle) opened() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sessions++
}

func (c *connIdle) closed(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sessions--; c.sessions == 0 {
		c.since = now
	}
}

// idleFor is how long the connection has had no SFTP session, 0 while it
// has.
func (c *connIdle) idleFor(now time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sessions > 0 {
		return 0
	}
	return now.Sub(c.since)
}

// closeIdleConn closes a connection that has had no SFTP session for the
// idle timeout: a login that never starts one, or a client that keeps its
// connection after its session idled out, must not hold a connection slot.
func (s *Server) closeIdleConn(ctx context.Context, conn ssh.Conn, idle *connIdle, log *slog.Logger) {
	afterIdle(ctx, s.idleTimeout, func() time.Duration { return idle.idleFor(s.now()) }, func(idleFor time.Duration) {
		log.Info("closing connection without a session", "idle", idleFor.Round(time.Second))
		conn.Close()
	})
}

// keepAlive probes the client every interval and closes a connection whose
// peer stopped answering, so dead sessions do not hold their uploads open.
// Between probes it is a timer, not a goroutine.
func (s *Server) keepAlive(ctx context.Context, conn ssh.Conn, log *slog.Logger) {
	every(ctx, s.keepalive, func() bool {
		answered := make(chan error, 1)
		go func() {
			_, _, err := conn.SendRequest("keepalive@openssh.com", true, nil)
			answered <- err
		}()
		select {
		case <-ctx.Done():
			return false
		case err := <-answered:
			if err == nil {
				return true
			}
		case <-time.After(3 * s.keepalive):
		}
		log.Warn("client stopped answering keepalives; closing")
		conn.Close()
		return false
	})
}

// serveChannel answers a session channel's requests: the sftp subsystem is
// served, anything else (shell, exec, pty, forwarding) is refused. A
// channel that has not started sftp within the idle timeout is closed.
func (s *Server) serveChannel(ctx context.Context, ch ssh.Channel, reqs <-chan *ssh.Request, idle *connIdle, sess *session) {
	defer ch.Close()
	// The subsystem's bookkeeping (settling cut-off uploads) must finish
	// before the connection counts as closed.
	var serving sync.WaitGroup
	defer serving.Wait()
	var started atomic.Bool
	notStarted := time.AfterFunc(s.idleTimeout, func() {
		if !started.Load() {
			sess.log.Info("closing session that never started sftp", "idle", s.idleTimeout)
			ch.Close()
		}
	})
	defer notStarted.Stop()
	for req := range reqs {
		ok := !started.Load() && req.Type == "subsystem" && subsystemName(req.Payload) == "sftp"
		if req.WantReply {
			_ = req.Reply(ok, nil)
		}
		switch {
		case ok:
		case req.Type == "env": // clients pass their locale; harmless to ignore
			sess.log.Debug("session request ignored", "type", clip.String(req.Type, clip.Name))
			continue
		default:
			sess.refusals.sshRequest(ctx, "session-request", req.Type)
			continue
		}
		started.Store(true)
		idle.opened()
		// Requests after the subsystem starts are refused by the loop.
		serving.Go(func() {
			defer idle.closed(s.now())
			status := sess.serve(ctx, ch)
			// As OpenSSH's server does; without it, clients log the
			// status as missing.
			_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
			ch.Close()
		})
	}
}

// serve runs the SFTP session on ch and returns its exit status: 0 when
// the client ended it, 1 when the server did.
func (sess *session) serve(ctx context.Context, ch ssh.Channel) (exitStatus uint32) {
	replies := newReplyPacker(ch)
	lane := newFileLane(sess, replies)
	guard := newPathGuard(replies, &replies.requests, lane)
	// The connection's end ends the session; the session's own end keeps
	// the channel open for the exit status.
	defer context.AfterFunc(ctx, func() { _ = guard.Close() })()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// An upload in progress is traffic, so it never idles out.
	afterIdle(ctx, sess.srv.idleTimeout, func() time.Duration { return time.Since(guard.lastRequest()) }, func(idle time.Duration) {
		sess.log.Info("closing idle session", "idle", idle.Round(time.Second))
		sess.idledOut.Store(true)
		_ = guard.Close()
	})
	sess.closeStalled(ctx, replies)
	err := sess.serveRequests(guard)
	clientEnded := (err == nil || errors.Is(err, io.EOF)) && !sess.idledOut.Load()
	if errors.Is(err, ErrBeforeInit) || errors.Is(err, sftp.ErrSSHFxBadMessage) {
		sess.refusals.record(ctx, "session ended: protocol violation", map[string]string{"op": "sftp", "reason": "protocol", "error": err.Error()})
	}
	if !clientEnded {
		sess.log.Debug("sftp session ended", "err", err)
		exitStatus = 1
	}
	lane.abort(err)
	if guard.escapes > 0 {
		sess.log.Warn("session tried to leave its home directory", "attempts", guard.escapes)
	}
	sess.releaseHeld()
	sess.endUploads()
	return exitStatus
}

// serveRequests serves the session's requests until the client or the
// server ends it. The lane serves what it can in the guard's Read; pkg/sftp,
// a request server of eleven goroutines, starts only with the first
// request the lane passes on, so that a session that only uploads,
// downloads or idles never costs them.
func (sess *session) serveRequests(guard *pathGuard) error {
	var first [1]byte
	if _, err := guard.Read(first[:]); err != nil {
		return err
	}
	// No sftp.WithRSAllocator: it saves some garbage collection but keeps a
	// 256 KiB page per request in flight, 18 MiB per busy session.
	return sftp.NewRequestServer(&begun{pathGuard: guard, first: first[:]}, sess.handlers()).Serve()
}

// begun is the guard with the first byte already read from it, for
// pkg/sftp to read again.
type begun struct {
	*pathGuard
	first []byte
}

func (b *begun) Read(p []byte) (int, error) {
	if len(b.first) == 0 {
		return b.pathGuard.Read(p)
	}
	n := copy(p, b.first)
	b.first = b.first[n:]
	return n, nil
}

func subsystemName(payload []byte) string {
	var msg struct{ Name string }
	if err := ssh.Unmarshal(payload, &msg); err != nil {
		return ""
	}
	return msg.Name
}

func remoteIP(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// audit appends an event; a failure is logged, never fatal to the request
// that caused it.
func (s *Server) audit(ctx context.Context, ev ledger.Event) {
	if _, err := s.ledger.Append(context.WithoutCancel(ctx), ev); err != nil {
		s.log.Error("append audit event", "kind", ev.Kind, "err", err)
	}
}
