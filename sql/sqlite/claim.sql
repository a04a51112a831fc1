-- The claim on SQLite: the write transaction (BEGIN IMMEDIATE) holds the database's single writer lock, so
-- choosing a lane (queue_heads), counting its running jobs and taking its head cannot interleave with another
-- claimer; the locks PostgreSQL needs are no-ops here.

-- name: claim_lane_head(worker_id, now, lease_expires_at, owner_key, max_running)^
-- pending -> processing for the head of one lane (owner key, '' for none): its first ready job in claim
-- order, while the lane's processing jobs stay under max_running (NULL: no limit).
UPDATE generations
SET status = 'processing',
    worker_id = :worker_id,
    started_at = :now,
    lease_expires_at = :lease_expires_at,
    attempts = attempts + 1
WHERE id = (
    SELECT g.id FROM generations AS g
    WHERE coalesce(g.owner_key, '') = :owner_key AND g.status = 'pending'
      AND (g.run_after IS NULL OR g.run_after <= :now)
    ORDER BY g.priority DESC, g.created_at, g.id
    LIMIT 1
)
AND (
    :max_running IS NULL
    OR (
        SELECT count(*) FROM generations AS p
        WHERE coalesce(p.owner_key, '') = :owner_key AND p.status = 'processing'
    ) < :max_running
)
RETURNING *;

-- name: lock_lane(owner_key)^
-- Nothing to lock: the writer lock already excludes every other claimer.
SELECT :owner_key IS NOT NULL AS locked;

-- name: try_lock_lane(owner_key)^
SELECT :owner_key IS NOT NULL AS locked;

-- name: lock_idempotency_key(idempotency_key)^
SELECT :idempotency_key IS NOT NULL AS locked;

-- name: queue_first(now, default_limit, window)^
-- The claim's fast path: the first ready job, in claim order across every lane (generations_queue), whose
-- lane has room under its limit, among the first :window ready jobs. Returns its lane (owner key, '' for
-- none), priority, the lane's running jobs and limit, and whether any pending job lies outside that lane
-- (others). A walk of a few index entries and, per job walked, the lane's count and limit.
SELECT w.owner_key, w.priority, w.running, w.max_running,
       (
           (
               SELECT coalesce(o.owner_key, '') FROM generations AS o
               WHERE o.status = 'pending'
               ORDER BY coalesce(o.owner_key, '')
               LIMIT 1
           ) < w.owner_key
           OR (
               SELECT coalesce(o.owner_key, '') FROM generations AS o
               WHERE o.status = 'pending' AND coalesce(o.owner_key, '') > w.owner_key
               ORDER BY coalesce(o.owner_key, '')
               LIMIT 1
           ) IS NOT NULL
       ) AS others
FROM (
    SELECT f.owner_key, f.priority,
           (
               SELECT count(*) FROM generations AS p
               WHERE coalesce(p.owner_key, '') = f.owner_key AND p.status = 'processing'
           ) AS running,
           CASE WHEN f.owner_key = '' THEN NULL
                ELSE coalesce(
                    (SELECT l.max_running FROM owner_limits AS l WHERE l.owner_key = f.owner_key),
                    CAST(:default_limit AS INTEGER)
                )
           END AS max_running
    FROM (
        SELECT coalesce(g.owner_key, '') AS owner_key, g.priority
        FROM generations AS g INDEXED BY generations_queue
        WHERE g.status = 'pending' AND (g.run_after IS NULL OR g.run_after <= :now)
        ORDER BY g.priority DESC, g.created_at, g.id
        LIMIT :window
    ) AS f
    LIMIT :window
) AS w
WHERE (w.max_running IS NULL OR w.running < w.max_running)
LIMIT 1;

-- name: queue_first_idle(now, default_limit, window, priority)^
-- The same among the first :window ready jobs of one priority (a range of generations_queue), for the first
-- whose lane has no job processing (running: 0, or 1 for a lane with any, not counted further) and room.
SELECT w.owner_key, w.priority, w.running, w.max_running,
       (
           (
               SELECT coalesce(o.owner_key, '') FROM generations AS o
               WHERE o.status = 'pending'
               ORDER BY coalesce(o.owner_key, '')
               LIMIT 1
           ) < w.owner_key
           OR (
               SELECT coalesce(o.owner_key, '') FROM generations AS o
               WHERE o.status = 'pending' AND coalesce(o.owner_key, '') > w.owner_key
               ORDER BY coalesce(o.owner_key, '')
               LIMIT 1
           ) IS NOT NULL
       ) AS others
FROM (
    SELECT f.owner_key, f.priority,
           (
               SELECT count(*) FROM (
                   SELECT 1 FROM generations AS p
                   WHERE coalesce(p.owner_key, '') = f.owner_key AND p.status = 'processing'
                   LIMIT 1
               ) AS one
           ) AS running,
           CASE WHEN f.owner_key = '' THEN NULL
                ELSE coalesce(
                    (SELECT l.max_running FROM owner_limits AS l WHERE l.owner_key = f.owner_key),
                    CAST(:default_limit AS INTEGER)
                )
           END AS max_running
    FROM (
        SELECT coalesce(g.owner_key, '') AS owner_key, g.priority
        FROM generations AS g INDEXED BY generations_queue
        WHERE g.status = 'pending' AND (g.run_after IS NULL OR g.run_after <= :now)
          AND g.priority = :priority
        ORDER BY g.priority DESC, g.created_at, g.id
        LIMIT :window
    ) AS f
    LIMIT :window
) AS w
WHERE (w.max_running IS NULL OR w.running < w.max_running)
  AND w.running = 0
LIMIT 1;

-- name: claim_unkeyed(worker_id, now, lease_expires_at)^
-- The claim when no pending job has an owner key: the head of the lane of jobs without one (never limited)
-- is then the best, taken in one statement; no row when any pending job has a key.
UPDATE generations
SET status = 'processing',
    worker_id = :worker_id,
    started_at = :now,
    lease_expires_at = :lease_expires_at,
    attempts = attempts + 1
WHERE id = (
    SELECT g.id FROM generations AS g
    WHERE coalesce(g.owner_key, '') = '' AND g.status = 'pending'
      AND (g.run_after IS NULL OR g.run_after <= :now)
    ORDER BY g.priority DESC, g.created_at, g.id
    LIMIT 1
)
AND (
    SELECT coalesce(o.owner_key, '') FROM generations AS o
    WHERE o.status = 'pending' AND coalesce(o.owner_key, '') > ''
    ORDER BY coalesce(o.owner_key, '')
    LIMIT 1
) IS NULL
RETURNING *;
