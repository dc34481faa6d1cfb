-- Requests to release a quarantined file, which wait for approvers other
-- than the requester: one pending request per transfer, and one approval
-- row per person, so that nobody counts twice. Both go when the release is
-- done or rejected; the audit log keeps the history.
CREATE TABLE release_requests (
	transfer_id  TEXT PRIMARY KEY,
	requester    TEXT NOT NULL,
	reason       TEXT NOT NULL,
	skip_rescan  INTEGER NOT NULL,
	requested_at TEXT NOT NULL
);
CREATE TABLE release_approvals (
	transfer_id TEXT NOT NULL,
	approver    TEXT NOT NULL,
	approved_at TEXT NOT NULL,
	PRIMARY KEY (transfer_id, approver)
);
