-- What a supplier's client did to its upload after sending it, shown in
-- its listings: mtime, the modification time it set (SETSTAT), so that
-- sync tools comparing size and time see the file as sent; hidden_at, when
-- it removed a settled upload from its listing (the delivered copy is not
-- touched). NULL until then.
ALTER TABLE transfers ADD COLUMN mtime TEXT;
ALTER TABLE transfers ADD COLUMN hidden_at TEXT;
