-- The queue's order, owner keys and limits. priority: higher first (-32768 to 32767). run_after: integer
-- microseconds since the epoch; not claimed before (NULL: at once). owner_key: the user or tenant (1-200
-- characters). idempotency_key: unique where set (1-200 characters). Existing rows: priority 0, no key.

ALTER TABLE generations ADD COLUMN priority INTEGER NOT NULL DEFAULT 0
    CHECK (priority BETWEEN -32768 AND 32767);
ALTER TABLE generations ADD COLUMN run_after INTEGER;
ALTER TABLE generations ADD COLUMN owner_key TEXT CHECK (length(owner_key) BETWEEN 1 AND 200);
ALTER TABLE generations ADD COLUMN idempotency_key TEXT CHECK (length(idempotency_key) BETWEEN 1 AND 200);

-- create_generation's look-up of an earlier request: unique among all generations.
CREATE UNIQUE INDEX generations_idempotency_key ON generations (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Each owner key's pending jobs in claim order (its head first); the distinct keys with work, walked one
-- index probe per key.
CREATE INDEX generations_lane_queue ON generations (coalesce(owner_key, ''), priority DESC, created_at, id)
    WHERE status = 'pending';
-- Each owner key's processing jobs: counted against its limit, and to order keys fairly. Not partial: a
-- small partial index of processing rows would draw PostgreSQL's planner away from the queue index for
-- other reads of processing rows (oldest first), which it then sorts.
CREATE INDEX generations_lane_running ON generations (status, coalesce(owner_key, ''));

-- Keys with a limit of their own on jobs processing at once (0: paused); other keys get the claim's default.
CREATE TABLE owner_limits (
    owner_key   TEXT    PRIMARY KEY CHECK (length(owner_key) BETWEEN 1 AND 200),
    max_running INTEGER NOT NULL CHECK (max_running BETWEEN 0 AND 1000000)
) STRICT, WITHOUT ROWID;
