-- Where a generation's file lives: the root's storage URL (NULL: a local root the reader knows), the key below
-- it and the SHA-256 of its bytes (lower-case hex). Rows completed before: key = file_path, no checksum.

ALTER TABLE generations ADD COLUMN storage_url TEXT CHECK (length(storage_url) BETWEEN 1 AND 2048);
ALTER TABLE generations ADD COLUMN storage_key TEXT CHECK (length(storage_key) BETWEEN 1 AND 1024);
ALTER TABLE generations ADD COLUMN checksum TEXT
    CHECK (length(checksum) = 64 AND checksum NOT GLOB '*[^0-9a-f]*');

-- A file_path over storage_key's 1,024 characters (the first versions took a path of any length) keeps
-- storage_key NULL: its file is read at file_path, as a local root's files are.
UPDATE generations SET storage_key = file_path WHERE file_path IS NOT NULL AND length(file_path) <= 1024;
