-- The queue's order, owner keys and their limits, idempotency keys, dead letters and replay (migration 0008).
-- A lane is an owner key's pending jobs ('' for jobs without a key), in claim order in generations_lane_queue.

-- name: get_by_idempotency_key(idempotency_key)^
-- The generation created with this idempotency key, if any.
SELECT * FROM generations WHERE idempotency_key = :idempotency_key;

-- name: set_owner_limit(owner_key, max_running)!
-- Give a key a limit of its own.
INSERT INTO owner_limits (owner_key, max_running) VALUES (:owner_key, :max_running)
ON CONFLICT (owner_key) DO UPDATE SET max_running = excluded.max_running;

-- name: delete_owner_limit(owner_key)!
-- The key goes back to the claim's default limit.
DELETE FROM owner_limits WHERE owner_key = :owner_key;

-- name: owner_limit(owner_key)^
-- A key's limit of its own (no row: none; 0: the key is paused).
SELECT max_running AS n FROM owner_limits WHERE owner_key = :owner_key;

-- name: owner_limits_after(after_key, limit)
-- The keys with a limit of their own, by key.
SELECT owner_key, max_running FROM owner_limits
WHERE owner_key > :after_key
ORDER BY owner_key
LIMIT :limit;

-- name: queue_depth(now)
-- Pending jobs by owner key ('' for none) and priority: how many, how many wait for their run_after, the
-- oldest creation time, and since when the longest-waiting ready job has been ready (the later of its
-- creation and its run_after; NULL when every one waits for its run_after). Read in generations_lane_queue's
-- order (a pass over the pending entries, no sort).
SELECT coalesce(owner_key, '') AS owner_key, priority, count(*) AS pending,
       sum(CASE WHEN run_after > :now THEN 1 ELSE 0 END) AS deferred,
       min(created_at) AS oldest_created_at,
       min(CASE WHEN run_after IS NULL OR run_after <= created_at THEN created_at
                WHEN run_after <= :now THEN run_after END) AS ready_since
FROM generations
WHERE status = 'pending'
GROUP BY coalesce(owner_key, ''), priority
ORDER BY coalesce(owner_key, ''), priority DESC;

-- name: queue_running()
-- Processing jobs by owner key ('' for none): the range of processing rows (PostgreSQL: generations_lane_running).
SELECT coalesce(owner_key, '') AS owner_key, count(*) AS running
FROM generations
WHERE status = 'processing'
GROUP BY coalesce(owner_key, '')
ORDER BY coalesce(owner_key, '');

-- name: replay_generation(id)!
-- failed -> pending, its attempts reset: a dead letter queued again (its last error stays until it completes;
-- its last attempt's progress goes: a queued job has none, as before its first claim; its started_at stays,
-- the last claim's start, as a retry's: its lane was served by that claim, and the lane without an owner key
-- reads when it was last served from its jobs' latest started_at). A dead letter that was
-- completed once (reconcile's repair marked it failed, its master lost) has no file until it completes again:
-- its size, storage, checksum and generation time go (the totals' triggers count no bytes for it), its
-- file_path stays (the master's key, which its next export writes again; creation's idempotency check reads it
-- as "completed once").
UPDATE generations
SET status = 'pending',
    attempts = 0,
    file_size_bytes = NULL,
    storage_url = NULL,
    storage_key = NULL,
    checksum = NULL,
    generation_time_seconds = NULL,
    worker_id = NULL,
    completed_at = NULL,
    lease_expires_at = NULL,
    progress = NULL,
    stage = NULL,
    progress_at = NULL,
    run_after = NULL
WHERE id = :id AND status = 'failed';

-- name: replay_failed()
-- Every failed generation -> pending, attempts reset, its last attempt's progress gone, in one statement; as
-- replay_generation, one completed once keeps its file_path only (and each its started_at).
UPDATE generations
SET status = 'pending',
    attempts = 0,
    file_size_bytes = NULL,
    storage_url = NULL,
    storage_key = NULL,
    checksum = NULL,
    generation_time_seconds = NULL,
    worker_id = NULL,
    completed_at = NULL,
    lease_expires_at = NULL,
    progress = NULL,
    stage = NULL,
    progress_at = NULL,
    run_after = NULL
WHERE status = 'failed'
RETURNING id;
