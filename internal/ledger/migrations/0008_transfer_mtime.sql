-- The modification time a supplier's client set on its upload (SETSTAT),
-- shown in its listings so that sync tools comparing size and time see the
-- file as sent. NULL until a client sets one.
ALTER TABLE transfers ADD COLUMN mtime TEXT;
