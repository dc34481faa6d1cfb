-- Notices sent to people (an SSH key about to expire, ...), one row each,
-- so that a notice goes out once across restarts and nodes. The id says
-- what the notice is about, e.g. key-expiry:<supplier>:<fingerprint>:<date>.
CREATE TABLE notices (
	id      TEXT PRIMARY KEY,
	sent_at TEXT NOT NULL
);
