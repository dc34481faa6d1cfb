-- A batch groups the transfers one trigger started: a route's flag object
-- (one version of it: key, size, mtime), or later a release manifest. One
-- batch per trigger version, so a flag seen again never starts a second;
-- reruns names the batch an earlier version of the same flag started.
-- The manifest is each member's name, size and sha256: the members' rows;
-- it is sent to the destination last, when the batch is delivered.
CREATE TABLE batches (
	id          TEXT PRIMARY KEY,
	route       TEXT NOT NULL,
	trigger_key TEXT NOT NULL,
	trigger_version TEXT NOT NULL,
	reruns      TEXT NOT NULL DEFAULT '',
	files       INTEGER NOT NULL,
	state       TEXT NOT NULL DEFAULT 'open',  -- open, then delivered once every member is and its manifest sent
	created_at  TEXT NOT NULL,
	settled_at  TEXT,
	UNIQUE (route, trigger_key, trigger_version)
);
CREATE INDEX transfers_batch ON transfers (batch) WHERE batch <> '';
