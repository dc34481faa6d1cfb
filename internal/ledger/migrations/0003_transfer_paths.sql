-- The SFTP server asks "what is at this path" and "is anything below this
-- directory" of one supplier's transfers on every request.
CREATE INDEX transfers_supplier_path ON transfers (supplier, path);
