-- The queue index matches the claim's order (created_at, id) exactly; reconcile gets an index by file.
-- Portable SQL: the same statements on SQLite and PostgreSQL (both have partial indexes).
-- depends: 0002.initial-schema

-- The queue (oldest pending first, ties by id), status lists (newest first) and requeue_expired, with no
-- sort step: with (status, created_at) alone PostgreSQL's planner could walk the time index instead,
-- filtering out every non-pending row older than the queue's head (a quadratic drain).
DROP INDEX generations_status_created_at;
CREATE INDEX generations_status_created_at_id ON generations (status, created_at, id);

-- reconcile and cleanup look rows up by the file they record; rows without a file are not indexed.
CREATE INDEX generations_file_path ON generations (file_path) WHERE file_path IS NOT NULL;
