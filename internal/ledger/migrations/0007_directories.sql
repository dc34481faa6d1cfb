-- The directories suppliers made with MKDIR that hold no upload yet, so
-- that every node sees them and they outlive a restart. A directory that
-- holds uploads is known from the transfers' paths.
CREATE TABLE directories (
	supplier   TEXT NOT NULL,
	path       TEXT NOT NULL,
	created_at TEXT NOT NULL,
	PRIMARY KEY (supplier, path)
);
