package sftpd

import (
	"cmp"
	"context"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
)

// BanStore keeps the failed logins and bans of client addresses where all
// the nodes sharing it see them: the ledger's database. A node writes its
// strikes in batches and reads the bans back on a timer (see banBook).
type BanStore interface {
	// Strike adds the strikes node counted (written at at), and returns
	// each address's count and ban as they leave it, in order, Made set
	// on the bans they made. An address banned already is left alone.
	Strike(ctx context.Context, node string, at time.Time, rule ledger.BanRule, strikes []ledger.Strikes) ([]ledger.Ban, error)
	// Bans returns the bans in force at at.
	Bans(ctx context.Context, at time.Time) ([]ledger.Ban, error)
}

var _ BanStore = (*ledger.Ledger)(nil)

// A node writes its strikes every banFlushEvery and reads every node's
// bans every banPollEvery: a ban one node makes is refused by all within
// their sum and two round trips to the database (documented as 2 s). So
// a flood of failed logins costs at most one write per banFlushEvery per
// node, however many addresses it comes from.
const (
	banFlushEvery = 250 * time.Millisecond
	banPollEvery  = time.Second
)

// maxTracked bounds the addresses a node keeps strikes not yet written of,
// and the counts it keeps of the store's.
const maxTracked = 10000

// banBook is this node's view of the bans all nodes made, and the strikes
// it counted that the store has not seen yet. An address banned costs no
// write: it is refused before it can earn a strike.
type banBook struct {
	store BanStore
	node  string
	rule  ledger.BanRule
	now   func() time.Time

	mu      sync.Mutex
	banned  map[netip.Addr]time.Time  // address → end of ban
	known   map[netip.Addr]ledger.Ban // the store's counts of addresses not banned, as of this node's last write
	pending map[netip.Addr]*pendingStrikes
}

type pendingStrikes struct {
	count          int
	reason, connID string    // of the latest strike, for the ban's audit event
	last           time.Time // of the latest strike: a ban runs from then
}

// madeBan is a ban this node's strikes made, with the connection of the
// latest of them.
type madeBan struct {
	ledger.Ban
	connID string
}

func newBanBook(store BanStore, node string, rule ledger.BanRule) *banBook {
	return &banBook{store: store, node: node, rule: rule, now: time.Now,
		banned: make(map[netip.Addr]time.Time), known: make(map[netip.Addr]ledger.Ban), pending: make(map[netip.Addr]*pendingStrikes)}
}

func (b *banBook) isBanned(ip netip.Addr) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	until, ok := b.banned[ip]
	return ok && b.now().Before(until)
}

// strike counts a strike against ip, for the next flush. An address whose
// strikes reach the threshold, counting those the store had at this node's
// last write, is refused here at once: the store, which has seen no fewer,
// bans it on the flush. A lone node thus bans as soon as the threshold is
// reached; nodes that share the store, within a flush and a poll.
func (b *banBook) strike(ip netip.Addr, reason, connID string) {
	if b.rule.Threshold <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if until, ok := b.banned[ip]; ok && now.Before(until) {
		return
	}
	p := b.pending[ip]
	if p == nil {
		if len(b.pending) >= maxTracked {
			return // a flood from many addresses: the next flush makes room
		}
		p = &pendingStrikes{}
		b.pending[ip] = p
	}
	p.count++
	p.reason, p.connID, p.last = reason, connID, now
	count := p.count
	if k, ok := b.known[ip]; ok && now.Sub(k.WindowStart) < b.rule.Window {
		count += k.Failures
	}
	if count >= b.rule.Threshold {
		b.banned[ip] = now.Add(b.rule.Duration)
	}
}

// flush writes the pending strikes, if any, in one call (wrote) and
// returns the bans they made. Strikes the store did not take are kept for
// the next flush.
func (b *banBook) flush(ctx context.Context) (made []madeBan, wrote bool, err error) {
	b.mu.Lock()
	pending := b.pending
	b.pending = make(map[netip.Addr]*pendingStrikes, len(pending))
	b.mu.Unlock()
	if len(pending) == 0 {
		return nil, false, nil
	}
	strikes := make([]ledger.Strikes, 0, len(pending))
	for ip, p := range pending {
		strikes = append(strikes, ledger.Strikes{IP: ip, Count: p.count, Reason: p.reason, Last: p.last})
	}
	// In address order, so that nodes writing at once lock the same
	// rows in the same order and cannot deadlock.
	slices.SortFunc(strikes, func(x, y ledger.Strikes) int { return x.IP.Compare(y.IP) })
	now := b.now()
	counts, err := b.store.Strike(ctx, b.node, now, b.rule, strikes)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		for ip, p := range pending {
			if q := b.pending[ip]; q != nil {
				p.count += q.count
				p.reason, p.connID, p.last = q.reason, q.connID, q.last
			}
			b.pending[ip] = p
		}
		return nil, true, err
	}
	b.forgetStaleLocked(now)
	for _, c := range counts {
		switch {
		case c.BannedUntil.After(now):
			b.banned[c.IP] = c.BannedUntil
			delete(b.known, c.IP)
		case len(b.known) < maxTracked:
			b.known[c.IP] = c
		}
		if c.Made {
			made = append(made, madeBan{Ban: c, connID: pending[c.IP].connID})
		}
	}
	return made, true, nil
}

// forgetStaleLocked drops the counts whose window has ended, once there
// are many.
func (b *banBook) forgetStaleLocked(now time.Time) {
	if len(b.known) < maxTracked {
		return
	}
	for ip, k := range b.known {
		if now.Sub(k.WindowStart) >= b.rule.Window {
			delete(b.known, ip)
		}
	}
}

// refresh takes the bans in force from the store, keeping those this node
// made alone and has not written yet.
func (b *banBook) refresh(ctx context.Context) error {
	bans, err := b.store.Bans(ctx, b.now())
	if err != nil {
		return err
	}
	banned := make(map[netip.Addr]time.Time, len(bans))
	for _, ban := range bans {
		banned[ban.IP] = ban.BannedUntil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for ip := range b.pending {
		if until, ok := b.banned[ip]; ok {
			banned[ip] = until
		}
	}
	b.banned = banned
	return nil
}

// syncBans writes this node's strikes and reads every node's bans until
// ctx ends, then writes what is left.
func (s *Server) syncBans(ctx context.Context) {
	if s.bans.rule.Threshold <= 0 {
		return
	}
	s.refreshBans(ctx)
	flush, poll := time.NewTicker(banFlushEvery), time.NewTicker(banPollEvery)
	defer flush.Stop()
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			s.flushStrikes(final)
			cancel()
			return
		case <-flush.C:
			s.flushStrikes(ctx)
		case <-poll.C:
			s.refreshBans(ctx)
		}
	}
}

func (s *Server) refreshBans(ctx context.Context) {
	if err := s.bans.refresh(ctx); err != nil {
		s.metrics.banStoreErrors.Inc()
		s.log.Warn("cannot read the bans of all nodes; keeping those known", "err", err)
	}
}

// flushStrikes writes the strikes counted, and says why in the log and the
// audit trail for each ban they made.
func (s *Server) flushStrikes(ctx context.Context) {
	made, wrote, err := s.bans.flush(ctx)
	if wrote {
		s.metrics.banWrites.Inc()
	}
	if err != nil {
		s.metrics.banStoreErrors.Inc()
		s.log.Warn("cannot write failed logins; retrying", "err", err)
		return
	}
	for _, b := range made {
		duration := b.BannedUntil.Sub(s.now()).Round(time.Second)
		s.log.Warn("address banned", "remote_ip", b.IP.String(), "conn_id", b.connID, "reason", b.Reason,
			"failures", b.Failures, "for", duration)
		s.metrics.bans.Inc()
		s.audit(ctx, ledger.Event{Kind: "ip.banned", Actor: "system", RemoteIP: b.IP.String(), ConnID: b.connID,
			Detail: map[string]string{"reason": b.Reason, "duration": s.bans.rule.Duration.String(),
				"failures": strconv.Itoa(b.Failures), "node": b.Node, "until": b.BannedUntil.UTC().Format(time.RFC3339)}})
	}
}

// MemoryBans is a BanStore in this process's memory: one node's alone, for
// a Server given no other, and for tests.
type MemoryBans struct {
	mu   sync.Mutex
	bans map[netip.Addr]*ledger.Ban
}

// NewMemoryBans returns an empty store.
func NewMemoryBans() *MemoryBans { return &MemoryBans{bans: make(map[netip.Addr]*ledger.Ban)} }

// Strike is BanStore.Strike.
func (m *MemoryBans) Strike(_ context.Context, node string, at time.Time, rule ledger.BanRule, strikes []ledger.Strikes) ([]ledger.Ban, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for ip, b := range m.bans {
		if b.WindowStart.Before(at.Add(-rule.Window)) && !b.BannedUntil.After(at) {
			delete(m.bans, ip)
		}
	}
	out := make([]ledger.Ban, len(strikes))
	for i, s := range strikes {
		b := m.bans[s.IP]
		switch {
		case b != nil && b.BannedUntil.After(at):
			out[i] = *b
			continue
		case b == nil || !b.BannedUntil.IsZero() || b.WindowStart.Before(at.Add(-rule.Window)):
			b = &ledger.Ban{IP: s.IP, WindowStart: at}
			m.bans[s.IP] = b
		}
		b.Failures += s.Count
		b.Node, b.Reason = node, s.Reason
		if b.Failures >= rule.Threshold {
			b.BannedUntil = cmp.Or(s.Last, at).Add(rule.Duration)
		}
		out[i] = *b
		out[i].Made = !b.BannedUntil.IsZero()
	}
	return out, nil
}

// Bans is BanStore.Bans.
func (m *MemoryBans) Bans(_ context.Context, at time.Time) ([]ledger.Ban, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []ledger.Ban
	for _, b := range m.bans {
		if b.BannedUntil.After(at) {
			out = append(out, *b)
		}
	}
	slices.SortFunc(out, func(x, y ledger.Ban) int { return cmp.Compare(x.IP.String(), y.IP.String()) })
	return out, nil
}
