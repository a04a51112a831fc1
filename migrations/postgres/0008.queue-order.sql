-- The queue's order, owner keys and limits: the same columns, table and indexes as on SQLite, in
-- PostgreSQL's types. priority: higher first (-32768 to 32767). run_after: not claimed before (NULL: at
-- once). owner_key: the user or tenant. idempotency_key: unique where set. Existing rows: priority 0, no key.

ALTER TABLE generations
    ADD COLUMN priority integer NOT NULL DEFAULT 0 CHECK (priority BETWEEN -32768 AND 32767),
    ADD COLUMN run_after timestamptz,
    ADD COLUMN owner_key text CHECK (length(owner_key) BETWEEN 1 AND 200),
    ADD COLUMN idempotency_key text CHECK (length(idempotency_key) BETWEEN 1 AND 200);

CREATE UNIQUE INDEX generations_idempotency_key ON generations (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX generations_lane_queue ON generations (coalesce(owner_key, ''), priority DESC, created_at, id)
    WHERE status = 'pending';
-- Each owner key's processing jobs: counted against its limit, and to order keys fairly. Not partial: a
-- small partial index of processing rows would draw PostgreSQL's planner away from the queue index for
-- other reads of processing rows (oldest first), which it then sorts.
CREATE INDEX generations_lane_running ON generations (status, coalesce(owner_key, ''));

CREATE TABLE owner_limits (
    owner_key   text    PRIMARY KEY CHECK (length(owner_key) BETWEEN 1 AND 200),
    max_running integer NOT NULL CHECK (max_running BETWEEN 0 AND 1000000)
);
