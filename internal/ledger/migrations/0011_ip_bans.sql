-- Failed logins and bans by client address, shared by every node on the
-- database: failures counts the strikes since window_start; banned_until,
-- once set, is when the ban ends, made by node for reason. Nodes write
-- their counts in batches (see sftpd's banBook) and read the bans in force.
CREATE TABLE ip_bans (
    ip           TEXT PRIMARY KEY,
    failures     BIGINT NOT NULL,
    window_start TEXT NOT NULL,
    banned_until TEXT,
    node         TEXT NOT NULL,
    reason       TEXT NOT NULL
);
CREATE INDEX ip_bans_banned_until ON ip_bans (banned_until);
