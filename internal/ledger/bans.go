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
	Failures    int        `json:"failures"`
	BannedUntil time.Time  `json:"banned_until"` // zero: not banned
	Node        string     `json:"node"`         // the node whose strikes made the ban
	Reason      string     `json:"reason"`
}

// BanRule is sftp.ban: Threshold strikes within Window ban an address for
// Duration.
type BanRule struct {
	Threshold int
	Window    time.Duration
	Duration  time.Duration
}

// Strikes are the failures a node counted against one address since it
// last wrote, with the reason of the latest.
type Strikes struct {
	IP     netip.Addr
	Count  int
	Reason string
}

// ErrNotBanned means an address has no ban in force.
var ErrNotBanned = errors.New("address not banned")

// Strike adds the strikes node counted (at, by rule) to the shared counts,
// in one transaction, and returns the bans they made. An address banned
// already is left alone; one whose window or ban has ended counts afresh.
// Counts whose window and ban have both ended are deleted on the way.
func (l *Ledger) Strike(ctx context.Context, node string, at time.Time, rule BanRule, strikes []Strikes) ([]Ban, error) {
	var made []Ban
	err := l.inTx(ctx, relaxed, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM ip_bans WHERE window_start < $1 AND (banned_until IS NULL OR banned_until < $2)`,
			formatTime(at.Add(-rule.Window)), formatTime(at)); err != nil {
			return err
		}
		for _, s := range strikes {
			b, banned, err := l.strike(ctx, tx, node, at, rule, s)
			if err != nil {
				return err
			}
			if banned {
				made = append(made, b)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("count failed logins: %w", err)
	}
	return made, nil
}

// strike adds one address's strikes and reports whether they banned it.
func (l *Ledger) strike(ctx context.Context, tx *sql.Tx, node string, at time.Time, rule BanRule, s Strikes) (Ban, bool, error) {
	ip, now := s.IP.String(), formatTime(at)
	if _, err := tx.ExecContext(ctx, `INSERT INTO ip_bans (ip, failures, window_start, node, reason) VALUES ($1, 0, $2, $3, $4)
		ON CONFLICT (ip) DO NOTHING`, ip, now, node, s.Reason); err != nil {
		return Ban{}, false, err
	}
	lock := "" // SQLite's immediate transaction holds the write lock already
	if l.postgres {
		lock = " FOR UPDATE"
	}
	var failures int
	var start string
	var until sql.NullString
	if err := tx.QueryRowContext(ctx, `SELECT failures, window_start, banned_until FROM ip_bans WHERE ip = $1`+lock, ip).
		Scan(&failures, &start, &until); err != nil {
		return Ban{}, false, err
	}
	if until.Valid && until.String > now {
		return Ban{}, false, nil // banned already: the strikes came in flight
	}
	if until.Valid || start < formatTime(at.Add(-rule.Window)) {
		failures, start = 0, now
	}
	b := Ban{IP: s.IP, Failures: failures + s.Count, Node: node, Reason: s.Reason}
	var bannedUntil *string
	if b.Failures >= rule.Threshold {
		b.BannedUntil = at.Add(rule.Duration).UTC().Truncate(time.Microsecond)
		u := formatTime(b.BannedUntil)
		bannedUntil = &u
	}
	_, err := tx.ExecContext(ctx, `UPDATE ip_bans SET failures = $1, window_start = $2, banned_until = $3, node = $4, reason = $5 WHERE ip = $6`,
		b.Failures, start, bannedUntil, node, s.Reason, ip)
	return b, bannedUntil != nil, err
}

// Bans returns the bans in force at at, by address.
func (l *Ledger) Bans(ctx context.Context, at time.Time) ([]Ban, error) {
	rows, err := l.reads.QueryContext(ctx, `SELECT ip, failures, banned_until, node, reason FROM ip_bans
		WHERE banned_until > $1 ORDER BY ip`, formatTime(at))
	if err != nil {
		return nil, fmt.Errorf("list bans: %w", err)
	}
	defer rows.Close()
	var out []Ban
	for rows.Next() {
		var b Ban
		var ip, until string
		if err := rows.Scan(&ip, &b.Failures, &until, &b.Node, &b.Reason); err != nil {
			return nil, fmt.Errorf("list bans: %w", err)
		}
		if b.IP, err = netip.ParseAddr(ip); err == nil {
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
