package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// UploadSession is an SFTP session that uploads. Its uploads land under
// LandingPrefix, and one may land there a moment before its transfer is
// recorded (see sftpd): the open session is what lets its node, restarted
// after a crash, find and remove such an upload.
type UploadSession struct {
	ID        string
	Node      string
	Supplier  string
	StartedAt time.Time
}

// LandingPrefix is where the session's uploads land: each under this
// prefix followed by its transfer id.
func (s UploadSession) LandingPrefix() string { return s.Supplier + "/" + s.ID + "." }

// StartUploads records an upload session of supplier on node. The commit is
// durable: what lands under its prefix is only ever found through it. It
// writes one row and no audit event, so it takes no turn on the chain head.
func (l *Ledger) StartUploads(ctx context.Context, node, supplier string) (UploadSession, error) {
	at := now()
	s := UploadSession{ID: newID(at), Node: node, Supplier: supplier, StartedAt: at}
	err := l.inTx(ctx, durable, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO upload_sessions (id, node, supplier, started_at) VALUES ($1, $2, $3, $4)`,
			s.ID, s.Node, s.Supplier, formatTime(s.StartedAt))
		return err
	})
	if err != nil {
		return UploadSession{}, fmt.Errorf("start upload session: %w", err)
	}
	return s, nil
}

// EndUploads forgets upload session id, whose uploads are all recorded.
func (l *Ledger) EndUploads(ctx context.Context, id string) error {
	err := l.inTx(ctx, relaxed, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM upload_sessions WHERE id = $1`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("end upload session %s: %w", id, err)
	}
	return nil
}

// UploadSessions returns node's upload sessions that have not ended.
func (l *Ledger) UploadSessions(ctx context.Context, node string) ([]UploadSession, error) {
	rows, err := l.reads.QueryContext(ctx, `SELECT id, node, supplier, started_at FROM upload_sessions WHERE node = $1 ORDER BY started_at, id`, node)
	if err != nil {
		return nil, fmt.Errorf("list upload sessions: %w", err)
	}
	defer rows.Close()
	var out []UploadSession
	for rows.Next() {
		var s UploadSession
		var started string
		if err := rows.Scan(&s.ID, &s.Node, &s.Supplier, &started); err != nil {
			return nil, fmt.Errorf("list upload sessions: %w", err)
		}
		if s.StartedAt, err = parseTime(started); err != nil {
			return nil, fmt.Errorf("upload session %s: started_at: %w", s.ID, err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list upload sessions: %w", err)
	}
	return out, nil
}
