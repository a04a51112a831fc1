-- Back to the database's default collation (the unique index rebuilt in its order).
ALTER TABLE renditions ALTER COLUMN settings TYPE TEXT COLLATE "default";
