-- Each running node's heartbeat: a node silent for pipeline.rescue_after
-- is taken for dead, and its jobs are run by the others.
CREATE TABLE nodes (
	name    TEXT PRIMARY KEY,
	seen_at TEXT NOT NULL
);
