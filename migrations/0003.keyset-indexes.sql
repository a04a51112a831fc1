-- Indexes that match the keyset order (created_at, id) exactly, and one for reconcile's lookups by file.
-- Portable SQL: the same statements on SQLite and PostgreSQL (both have partial indexes).
-- depends: 0002.initial-schema

-- The queue (oldest pending first), status lists (newest first) and requeue_expired, with no sort step:
-- (status, created_at) alone left PostgreSQL walking the time index and SQLite sorting ties by id.
DROP INDEX generations_status_created_at;
CREATE INDEX generations_status_created_at_id ON generations (status, created_at, id);

-- Unfiltered lists, newest first.
DROP INDEX generations_created_at;
CREATE INDEX generations_created_at_id ON generations (created_at, id);

-- reconcile and cleanup look rows up by the file they record; rows without a file are not indexed.
CREATE INDEX generations_file_path ON generations (file_path) WHERE file_path IS NOT NULL;
