-- Egress and releases: a transfer's route is the dataset or route it moves
-- along ('' for a supplier's own uploads and downloads, whose route is the
-- supplier); its batch groups the transfers one trigger started ('' when
-- none). An egress transfer's landing_key is its key in the source store,
-- and (route, landing_key) finds whether that object was admitted before.
ALTER TABLE transfers ADD COLUMN route TEXT NOT NULL DEFAULT '';
ALTER TABLE transfers ADD COLUMN batch TEXT NOT NULL DEFAULT '';
CREATE INDEX transfers_route_source ON transfers (route, landing_key) WHERE route <> '';

-- Approvals of transfers held in awaiting_approval: one row per person and
-- transfer, so that nobody counts twice.
CREATE TABLE approvals (
	transfer_id TEXT NOT NULL,
	approver    TEXT NOT NULL,
	approved_at TEXT NOT NULL,
	PRIMARY KEY (transfer_id, approver)
);
