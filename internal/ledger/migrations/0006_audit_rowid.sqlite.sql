-- SQLite keeps a table's rows by their rowid, and only an INTEGER PRIMARY
-- KEY is that rowid: with BIGINT the sequence number had an index of its own,
-- one more page written by every transaction that appends an event. (Postgres
-- has no such alias, and keeps this table as it is.)
CREATE TABLE audit_events_rowid (
	seq         INTEGER PRIMARY KEY,
	at          TEXT NOT NULL,
	kind        TEXT NOT NULL,
	actor       TEXT NOT NULL,
	remote_ip   TEXT NOT NULL,
	conn_id     TEXT NOT NULL,
	transfer_id TEXT NOT NULL,
	detail      TEXT NOT NULL,
	prev_hash   TEXT NOT NULL,
	hash        TEXT NOT NULL
);
INSERT INTO audit_events_rowid (seq, at, kind, actor, remote_ip, conn_id, transfer_id, detail, prev_hash, hash)
	SELECT seq, at, kind, actor, remote_ip, conn_id, transfer_id, detail, prev_hash, hash FROM audit_events ORDER BY seq;
DROP TABLE audit_events;
ALTER TABLE audit_events_rowid RENAME TO audit_events;
CREATE INDEX audit_events_transfer ON audit_events (transfer_id, seq);
