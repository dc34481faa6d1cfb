-- The SFTP sessions of each node that have uploads on their way. A session's
-- uploads land under a prefix of its own, and a short upload is recorded
-- only once it ends: a node restarted after a crash removes what its open
-- sessions left under their prefixes that no transfer accounts for.
CREATE TABLE upload_sessions (
	id         TEXT PRIMARY KEY,
	node       TEXT NOT NULL,
	supplier   TEXT NOT NULL,
	started_at TEXT NOT NULL
);
CREATE INDEX upload_sessions_node ON upload_sessions (node);
