-- The keys a store's listing is merged with sort by their bytes: UTF-8 byte order is code-point order,
-- Python's str order and S3's listing order, whatever collation the database was created with. Same type:
-- no table rewrite; the indexes on the columns (generations_file_path, renditions_storage_key_key) are
-- rebuilt in the new order.
ALTER TABLE generations ALTER COLUMN file_path TYPE TEXT COLLATE "C";
ALTER TABLE renditions ALTER COLUMN storage_key TYPE TEXT COLLATE "C";
