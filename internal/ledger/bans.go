package ledger

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Ban is a client address's failed logins, as every node sharing the
// database counts them, and its ban once they reached the threshold.
type Ban struct {
	IP          netip.Addr `json:"ip"`
	Failures    int        `json:"failures"`     // since WindowStart
	WindowStart time.Time  `json:"window_start"` // of the failures counted
	BannedUntil time.Time  `json:"banned_until"` // zero: not banned
	Node        string     `json:"node"`         // the node whose strikes made the ban, or came last
	Reason      string     `json:"reason"`
	// Made says that the strikes a Strike call just wrote made the ban.
	Made bool `json:"-"`
}

// BanRule is sftp.ban: Threshold strikes within Window ban an address for
// Duration.
type BanRule struct {
	Threshold int
	Window    time.Duration
	Duration  time.Duration
}

// Strikes are the failures a node counted against one address since it
// last wrote, with the reason and time of the latest: a ban they make runs
// from then (from the time of the write when Last is zero).
type Strikes struct {
	IP     netip.Addr
	Count  int
	Reason string
	Last   time.Time
}

// ErrNotBanned means an address has no ban in force.
var ErrNotBanned = errors.New("address not banned")

// Strike adds the strikes node counted (at, by rule) to the shared counts,
// in one transaction, and returns each address's count and ban as they
// leave it, Made set on the bans they made. An address banned already is
// left alone; one whose window or ban has ended counts afresh. Counts whose
// window and ban have both ended are deleted first.
//
// Rows are locked in the order of strikes: callers on several nodes that
// sort them alike cannot deadlock.
func (l *Ledger) Strike(ctx context.Context, node string, at time.Time, rule BanRule, strikes []Strikes) ([]Ban, error) {
	if err := l.pruneBans(ctx, at, rule.Window); err != nil {
		return nil, fmt.Errorf("count failed logins: %w", err)
	}
	out := make([]Ban, len(strikes))
	err := l.inTx(ctx, relaxed, func(tx *sql.Tx) error {
		for i, s := range strikes {
			var err error
			if out[i], err = l.strike(ctx, tx, node, at, rule, s); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count failed logins: %w", err)
	}
	return out, nil
}

// pruneBans deletes the counts whose window and ban have both ended, in a
// statement of its own that waits for no other writer (on Postgres it
// skips the rows others hold), so that it cannot take part in a deadlock.
func (l *Ledger) pruneBans(ctx context.Context, at time.Time, window time.Duration) error {
	stale := `window_start < $1 AND (banned_until IS NULL OR banned_until < $2)`
	query := `DELETE FROM ip_bans WHERE ` + stale
	if l.postgres {
		query = `DELETE FROM ip_bans WHERE ip IN (SELECT ip FROM ip_bans WHERE ` + stale + ` FOR UPDATE SKIP LOCKED)`
	}
	_, err := l.writes.ExecContext(ctx, query, formatTime(at.Add(-window)), formatTime(at))
	return err
}

// strike adds one address's strikes.
func (l *Ledger) strike(ctx context.Context, tx *sql.Tx, node string, at time.Time, rule BanRule, s Strikes) (Ban, error) {
	ip, now := s.IP.String(), formatTime(at)
	// The no-op update locks an existing row until the commit (Postgres;
	// SQLite's immediate transaction holds the write lock already), so no
	// other node's strike or prune changes it between this and the update.
	if _, err := tx.ExecContext(ctx, `INSERT INTO ip_bans (ip, failures, window_start, node, reason) VALUES ($1, 0, $2, $3, $4)
		ON CONFLICT (ip) DO UPDATE SET failures = ip_bans.failures`, ip, now, node, s.Reason); err != nil {
		return Ban{}, err
	}
	b := Ban{IP: s.IP}
	var start string
	var until sql.NullString
	if err := tx.QueryRowContext(ctx, `SELECT failures, window_start, banned_until, node, reason FROM ip_bans WHERE ip = $1`, ip).
		Scan(&b.Failures, &start, &until, &b.Node, &b.Reason); err != nil {
		return Ban{}, err
	}
	if until.Valid && until.String > now { // banned already: the strikes came in flight
		var err error
		if b.WindowStart, err = parseTime(start); err == nil {
			b.BannedUntil, err = parseTime(until.String)
		}
		return b, err
	}
	if until.Valid || start < formatTime(at.Add(-rule.Window)) {
		b.Failures, start = 0, now
	}
	b.Failures += s.Count
	b.Node, b.Reason = node, s.Reason
	var bannedUntil *string
	if b.Failures >= rule.Threshold {
		b.BannedUntil, b.Made = cmp.Or(s.Last, at).Add(rule.Duration).UTC().Truncate(time.Microsecond), true
		u := formatTime(b.BannedUntil)
		bannedUntil = &u
	}
	var err error
	if b.WindowStart, err = parseTime(start); err != nil {
		return Ban{}, err
	}
	_, err = tx.ExecContext(ctx, `UPDATE ip_bans SET failures = $1, window_start = $2, banned_until = $3, node = $4, reason = $5 WHERE ip = $6`,
		b.Failures, start, bannedUntil, node, s.Reason, ip)
	return b, err
}

// Bans returns the bans in force at at, by address.
func (l *Ledger) Bans(ctx context.Context, at time.Time) ([]Ban, error) {
	rows, err := l.reads.QueryContext(ctx, `SELECT ip, failures, window_start, banned_until, node, reason FROM ip_bans
		WHERE banned_until > $1 ORDER BY ip`, formatTime(at))
	if err != nil {
		return nil, fmt.Errorf("list bans: %w", err)
	}
	defer rows.Close()
	var out []Ban
	for rows.Next() {
		var b Ban
		var ip, start, until string
		if err := rows.Scan(&ip, &b.Failures, &start, &until, &b.Node, &b.Reason); err != nil {
			return nil, fmt.Errorf("list bans: %w", err)
		}
		if b.IP, err = netip.ParseAddr(ip); err == nil {
			b.WindowStart, err = parseTime(start)
		}
		if err == nil {
			b.BannedUntil, err = parseTime(until)
		}
		if err != nil {
			return nil, fmt.Errorf("list bans: %w", err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list bans: %w", err)
	}
	return out, nil
}

// Lift ends the ban of ip in force now, and forgets its failures, with its
// audit event (kind "ip.unbanned" unless set) in one transaction; it fails
// with ErrNotBanned, changing nothing, if there is none.
func (l *Ledger) Lift(ctx context.Context, ip netip.Addr, ev Event) error {
	ev.Kind, ev.At, ev.RemoteIP = cmp.Or(ev.Kind, "ip.unbanned"), now(), ip.String()
	err := l.withEvent(ctx, durable, &ev, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM ip_bans WHERE ip = $1 AND banned_until > $2`, ip.String(), formatTime(ev.At))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return cmp.Or(err, ErrNotBanned)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("lift the ban of %s: %w", ip, err)
	}
	return nil
}
