-- Where an interrupted upload may go on from: the bytes its landing store
-- kept (size), the sha256 state of those bytes, and what the store needs to
-- append to them (a local file's name, an S3 multipart upload's parts).
-- A row exists exactly while its transfer is interrupted.
CREATE TABLE resume_points (
    transfer_id TEXT PRIMARY KEY REFERENCES transfers (id),
    size        BIGINT NOT NULL,
    hash_state  TEXT NOT NULL,
    store_state TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
