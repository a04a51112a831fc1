-- Back to the database's default collation (indexes rebuilt in its order).
ALTER TABLE renditions ALTER COLUMN storage_key TYPE TEXT COLLATE "default";
ALTER TABLE generations ALTER COLUMN file_path TYPE TEXT COLLATE "default";
