-- The queue's order, owner keys and their limits, idempotency keys, dead letters and replay (migration 0008).
-- A lane is an owner key's pending jobs ('' for jobs without a key), in claim order in generations_lane_queue.

-- name: queue_heads(now, default_limit, limit)
-- The lanes a claim may take from, best first: the head of each lane with a ready job (run_after passed) and
-- room under its limit, ordered by the head's priority (higher first), then the lane's running jobs (fewer
-- first: fair across keys), then the head's age and id. The distinct lanes are found by a loose index scan
-- (one probe of generations_lane_queue per lane), so the cost grows with the number of lanes with pending
-- jobs, never with the jobs; only the heads, one per lane, are sorted.
WITH RECURSIVE lanes (owner_key) AS (
    SELECT (
        SELECT coalesce(owner_key, '') FROM generations
        WHERE status = 'pending'
        ORDER BY coalesce(owner_key, '')
        LIMIT 1
    )
    UNION ALL
    SELECT (
        SELECT coalesce(g.owner_key, '') FROM generations AS g
        WHERE g.status = 'pending' AND coalesce(g.owner_key, '') > lanes.owner_key
        ORDER BY coalesce(g.owner_key, '')
        LIMIT 1
    )
    FROM lanes
    WHERE lanes.owner_key IS NOT NULL
),
heads AS MATERIALIZED (
    SELECT lanes.owner_key,
           (
               SELECT g.id FROM generations AS g
               WHERE coalesce(g.owner_key, '') = lanes.owner_key AND g.status = 'pending'
                 AND (g.run_after IS NULL OR g.run_after <= :now)
               ORDER BY g.priority DESC, g.created_at, g.id
               LIMIT 1
           ) AS head_id,
           (
               SELECT count(*) FROM generations AS p
               WHERE coalesce(p.owner_key, '') = lanes.owner_key AND p.status = 'processing'
           ) AS running,
           CASE WHEN lanes.owner_key = '' THEN NULL
                ELSE coalesce(
                    (SELECT l.max_running FROM owner_limits AS l WHERE l.owner_key = lanes.owner_key),
                    CAST(:default_limit AS INTEGER)
                )
           END AS max_running
    FROM lanes
    WHERE lanes.owner_key IS NOT NULL
)
SELECT heads.owner_key, heads.max_running, heads.running, head.id, head.priority
FROM heads
JOIN generations AS head ON head.id = heads.head_id
WHERE heads.max_running IS NULL OR heads.running < heads.max_running
ORDER BY head.priority DESC, heads.running, head.created_at, head.id
LIMIT :limit;

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

-- name: owner_limits_after(after_key, limit)
-- The keys with a limit of their own, by key.
SELECT owner_key, max_running FROM owner_limits
WHERE owner_key > :after_key
ORDER BY owner_key
LIMIT :limit;

-- name: queue_depth(now)
-- Pending jobs by owner key ('' for none) and priority: how many, how many wait for their run_after, and the
-- oldest creation time. Read in generations_lane_queue's order (a pass over the pending entries, no sort).
SELECT coalesce(owner_key, '') AS owner_key, priority, count(*) AS pending,
       sum(CASE WHEN run_after > :now THEN 1 ELSE 0 END) AS deferred,
       min(created_at) AS oldest_created_at
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
-- failed -> pending, its attempts reset: a dead letter queued again (its last error stays until it completes).
UPDATE generations
SET status = 'pending',
    attempts = 0,
    worker_id = NULL,
    started_at = NULL,
    completed_at = NULL,
    lease_expires_at = NULL,
    run_after = NULL
WHERE id = :id AND status = 'failed';

-- name: replay_failed()
-- Every failed generation -> pending, attempts reset, in one statement.
UPDATE generations
SET status = 'pending',
    attempts = 0,
    worker_id = NULL,
    started_at = NULL,
    completed_at = NULL,
    lease_expires_at = NULL,
    run_after = NULL
WHERE status = 'failed'
RETURNING id;
