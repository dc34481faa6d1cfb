package sftpd

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/airlock-gw/airlock/internal/clip"
	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
)

// extFingerprint is the Permissions extension carrying the fingerprint of
// the key a client proved it holds.
const extFingerprint = "airlock-key-fp"

// authError is a refused login with a reason for the log, audit and metrics.
// The client only ever learns that the key was not accepted, so that user
// names and allowlists cannot be probed.
type authError struct{ reason string }

func (e *authError) Error() string { return "authentication refused: " + e.reason }

// Reasons a login is refused.
const (
	reasonUnknownUser  = "unknown-user"
	reasonIPNotAllowed = "ip-not-allowed"
	reasonKeyRejected  = "key-not-authorized"
	reasonKeyExpired   = "key-expired"
)

// sshConfig offers the algorithms of the profile (sftp.algorithms).
func (s *Server) sshConfig(signers []ssh.Signer, profile string) *ssh.ServerConfig {
	cfg := &ssh.ServerConfig{
		Config: algorithms(profile),
		PublicKeyAuthAlgorithms: []string{
			ssh.KeyAlgoED25519,
			ssh.KeyAlgoRSASHA512,
			ssh.KeyAlgoRSASHA256,
			ssh.KeyAlgoECDSA256,
			ssh.KeyAlgoECDSA384,
			ssh.KeyAlgoECDSA521,
		},
		ServerVersion: "SSH-2.0-airlock",
		MaxAuthTries:  s.maxAuthTries,
	}
	for _, signer := range signers {
		cfg.AddHostKey(signer)
	}
	return cfg
}

// algorithms returns the lists of a profile. Modern: AEAD ciphers only, no
// SHA-1, no CBC. Compatible adds, after them, AES-CTR with SHA-2 MACs, ETM
// and not: what clients without AEAD ciphers (libssh2 before 1.11, as in
// Debian 12's curl; paramiko before 3) offer. The client's order picks the
// algorithm, so a client that has AEAD still gets it.
func algorithms(profile string) ssh.Config {
	c := ssh.Config{
		KeyExchanges: []string{
			ssh.KeyExchangeMLKEM768X25519,
			ssh.KeyExchangeCurve25519,
			"curve25519-sha256@libssh.org",
		},
		Ciphers: []string{
			ssh.CipherAES128GCM,
			ssh.CipherAES256GCM,
			ssh.CipherChaCha20Poly1305,
		},
		MACs: []string{ssh.HMACSHA256ETM, ssh.HMACSHA512ETM},
	}
	if profile == config.AlgorithmsModern {
		return c
	}
	c.Ciphers = append(c.Ciphers, ssh.CipherAES128CTR, ssh.CipherAES192CTR, ssh.CipherAES256CTR)
	c.MACs = append(c.MACs, ssh.HMACSHA256, ssh.HMACSHA512)
	return c
}

// loginKey is the Permissions.ExtraData key of the public key a client
// logged in with, which revocation checks again on every reload.
type loginKey struct{}

// authorize applies the login rules, as the supplier set has them at now,
// to user logging in from ip with key: the key's entry, or an *authError
// naming the rule broken. Logins and revocations both ask it.
func authorize(set *config.Suppliers, user string, ip netip.Addr, key ssh.PublicKey, now time.Time) (config.AuthorizedKey, error) {
	supplier, ok := set.Lookup(user)
	if !ok {
		return config.AuthorizedKey{}, &authError{reason: reasonUnknownUser}
	}
	if !supplier.AllowsIP(ip) {
		return config.AuthorizedKey{}, &authError{reason: reasonIPNotAllowed}
	}
	if key == nil { // no key recorded: nothing to authorize the login by
		return config.AuthorizedKey{}, &authError{reason: reasonKeyRejected}
	}
	ak, ok := supplier.Authorize(key)
	if !ok {
		return config.AuthorizedKey{}, &authError{reason: reasonKeyRejected}
	}
	if ak.ExpiredAt(now) {
		return config.AuthorizedKey{}, &authError{reason: reasonKeyExpired}
	}
	return ak, nil
}

// connConfig is the server config for one connection: its callbacks know
// the connection's id for the log and audit trail, and set tried once the
// client attempts a real login (its failures are then counted already).
func (s *Server) connConfig(ctx context.Context, connID string, log *slog.Logger, tried *atomic.Bool) *ssh.ServerConfig {
	cfg := *s.cfg
	cfg.PublicKeyCallback = func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
		ak, err := authorize(s.suppliers(), meta.User(), remoteIP(meta.RemoteAddr()), key, s.now())
		if err != nil {
			return nil, err
		}
		return &ssh.Permissions{
			Extensions: map[string]string{extFingerprint: ak.Fingerprint},
			ExtraData:  map[any]any{loginKey{}: key},
		}, nil
	}
	// Only called once the client has signed with the key, so an offered
	// but unproven key can never log in.
	cfg.VerifiedPublicKeyCallback = func(_ ssh.ConnMetadata, _ ssh.PublicKey, perms *ssh.Permissions, _ string) (*ssh.Permissions, error) {
		return perms, nil
	}
	cfg.AuthLogCallback = func(meta ssh.ConnMetadata, method string, err error) {
		if method != "none" {
			tried.Store(true)
		}
		s.logAuth(ctx, meta, connID, log, method, err)
	}
	return &cfg
}

func (s *Server) logAuth(ctx context.Context, meta ssh.ConnMetadata, connID string, log *slog.Logger, method string, err error) {
	ip := remoteIP(meta.RemoteAddr()).String()
	// Before authentication the user name is whatever the client sent.
	user, method := clip.String(meta.User(), clip.Name), clip.String(method, clip.Name)
	log = log.With("user", user, "method", method)
	ev := ledger.Event{Actor: user, RemoteIP: ip, ConnID: connID, Detail: map[string]string{"method": method}}
	if err == nil {
		log.Info("authentication accepted")
		ev.Kind = "auth.ok"
		s.audit(ctx, ev)
		return
	}
	if method == "none" { // every client's opening probe for allowed methods
		return
	}
	reason := "other"
	var ae *authError
	switch {
	case errors.As(err, &ae):
		reason = ae.reason
	case method != "publickey":
		reason = "method-not-allowed"
	}
	log.Warn("authentication refused", "reason", reason, "err", err)
	s.metrics.authFailures.WithLabelValues(reason).Inc()
	ev.Kind = "auth.fail"
	ev.Detail["reason"] = reason
	s.audit(ctx, ev)
	s.bans.strike(remoteIP(meta.RemoteAddr()), banFailedLogins, connID)
}

// Why an address is banned, in the log and the ip.banned event.
const (
	banFailedLogins = "too many failed logins"
	banHeldSlots    = "held connections without logging in"
)

// droppedBeforeLogin handles a connection whose handshake ended without a
// login. A slot held to the deadline is a strike against the address, and
// so is one given up without trying a key while the pool is under
// pressure: holding slots is how a handful of addresses lock suppliers
// out. (A health check that connects and closes, at quiet times, is not.)
func (s *Server) droppedBeforeLogin(ctx context.Context, ip netip.Addr, connID string, log *slog.Logger, err error, deadline time.Duration, pressured, tried bool) {
	var ne net.Error
	switch {
	case errors.Is(err, errUntrustedHeader):
		// Audited, as a claim to another's address: one event more than
		// the connect event each connection already has.
		log.Warn("connection refused", "reason", reasonProxyHeaderUntrusted, "err", err)
		s.metrics.connectionsRefused.WithLabelValues(reasonProxyHeaderUntrusted).Inc()
		s.audit(ctx, ledger.Event{Kind: "connect.refused", Actor: "anonymous", RemoteIP: ip.String(), ConnID: connID,
			Detail: map[string]string{"reason": reasonProxyHeaderUntrusted}})
	case errors.As(err, &ne) && ne.Timeout():
		log.Warn("connection dropped", "reason", reasonHandshakeTimedOut, "after", deadline, "pressured", pressured)
		s.metrics.connectionsRefused.WithLabelValues(reasonHandshakeTimedOut).Inc()
		s.bans.strike(ip, banHeldSlots, connID)
	case pressured && !tried:
		log.Warn("connection closed before login while the pool was under pressure", "err", err)
		s.metrics.connectionsRefused.WithLabelValues(reasonClosedUnderPressure).Inc()
		s.bans.strike(ip, banHeldSlots, connID)
	default:
		log.Info("connection closed before login", "err", err)
	}
}
