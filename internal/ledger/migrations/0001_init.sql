-- Portable between SQLite and Postgres: TEXT/BIGINT/INTEGER only, and
-- timestamps as fixed-width RFC 3339 UTC text, so text order is time order.

CREATE TABLE transfers (
	id          TEXT PRIMARY KEY,
	direction   TEXT NOT NULL,
	supplier    TEXT NOT NULL,
	path        TEXT NOT NULL,
	size        BIGINT NOT NULL DEFAULT 0,
	sha256      TEXT NOT NULL DEFAULT '',
	state       TEXT NOT NULL,
	scan_result TEXT NOT NULL DEFAULT '',
	destination TEXT NOT NULL DEFAULT '',
	error       TEXT NOT NULL DEFAULT '',
	attempts    INTEGER NOT NULL DEFAULT 0,
	landing_key TEXT NOT NULL DEFAULT '',
	node        TEXT NOT NULL DEFAULT '',
	remote_ip   TEXT NOT NULL DEFAULT '',
	created_at  TEXT NOT NULL,
	updated_at  TEXT NOT NULL
);
CREATE INDEX transfers_supplier_state ON transfers (supplier, state);
CREATE INDEX transfers_state ON transfers (state);
CREATE INDEX transfers_node_state ON transfers (node, state);
-- List returns newest first.
CREATE INDEX transfers_created ON transfers (created_at, id);

-- The audit log: a hash chain, each row storing the hash of the one before.
CREATE TABLE audit_events (
	seq         BIGINT PRIMARY KEY,
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
CREATE INDEX audit_events_transfer ON audit_events (transfer_id, seq);

-- The chain head, kept apart from the rows: appends lock it to take turns,
-- and it reveals rows deleted from the end of the chain.
CREATE TABLE audit_head (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	seq  BIGINT NOT NULL,
	hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '');
