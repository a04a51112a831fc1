-- Where a generation's file lives: the root's storage URL (NULL: a local root the reader knows), the key below
-- it and the SHA-256 of its bytes (lower-case hex). Rows completed before: key = file_path, no checksum.

ALTER TABLE generations
    ADD COLUMN storage_url text CHECK (length(storage_url) BETWEEN 1 AND 2048),
    ADD COLUMN storage_key text CHECK (length(storage_key) BETWEEN 1 AND 1024),
    ADD COLUMN checksum text CHECK (checksum ~ '^[0-9a-f]{64}$');

-- A file_path over storage_key's 1,024 characters (the first versions took a path of any length) keeps
-- storage_key NULL: its file is read at file_path, as a local root's files are.
UPDATE generations SET storage_key = file_path WHERE file_path IS NOT NULL AND length(file_path) <= 1024;
