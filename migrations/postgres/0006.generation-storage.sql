-- Where a generation's file lives: the root's storage URL (NULL: a local root the reader knows), the key below
-- it and the SHA-256 of its bytes (lower-case hex). Rows completed before: key = file_path, no checksum.

ALTER TABLE generations
    ADD COLUMN storage_url text CHECK (length(storage_url) BETWEEN 1 AND 2048),
    ADD COLUMN storage_key text CHECK (length(storage_key) BETWEEN 1 AND 1024),
    ADD COLUMN checksum text CHECK (checksum ~ '^[0-9a-f]{64}$');

UPDATE generations SET storage_key = file_path WHERE file_path IS NOT NULL;
