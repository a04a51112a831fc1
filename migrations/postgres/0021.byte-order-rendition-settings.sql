-- A generation's renditions list by format, then their request key by its bytes (SQLite's BINARY order),
-- whatever collation the database was created with. Same type: no table rewrite; the unique index
-- (generation_id, format, settings) is rebuilt in the new order.
ALTER TABLE renditions ALTER COLUMN settings TYPE TEXT COLLATE "C";
