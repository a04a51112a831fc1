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
    OR coalesce((SELECT l.running FROM owner_lanes AS l WHERE l.owner_key = :owner_key), 0) < :max_running
)
RETURNING *;

-- name: lock_lane(owner_key)^
-- Nothing to lock: the writer lock already excludes every other claimer.
SELECT :owner_key IS NOT NULL AS locked;

-- name: try_lock_lane(owner_key)^
SELECT :owner_key IS NOT NULL AS locked;

-- name: lock_idempotency_key(idempotency_key)^
SELECT :idempotency_key IS NOT NULL AS locked;

-- name: queue_decide(now, default_limit)^
-- The lane queue_heads would rank first (owner key, '' for none; its limit; locked: always, the writer lock
-- is held), from the lanes' heads as the
-- triggers of migration 0012 keep them: the first keyed lane with room in owner_lanes_order (its head's
-- priority, its running jobs, its head's age) against the lane without a key (its first ready job, its
-- running jobs). A row of NULLs when no lane has a ready job and room; no row when that first keyed lane's
-- head waits for its run_after (its lane's first ready job is further on: the claim ranks every lane).
WITH keyed AS MATERIALIZED (
    SELECT l.owner_key, l.running, l.head_priority AS priority, l.head_created_at AS created_at,
           l.head_id AS id, l.max_running
    FROM (
        SELECT l.*,
               coalesce(
                   (SELECT o.max_running FROM owner_limits AS o WHERE o.owner_key = l.owner_key),
                   CAST(:default_limit AS INTEGER)
               ) AS max_running
        FROM owner_lanes AS l INDEXED BY owner_lanes_order
        WHERE l.head_id IS NOT NULL
        ORDER BY l.head_priority DESC, l.running, l.head_created_at, l.head_id
    ) AS l
    WHERE l.max_running IS NULL OR l.running < l.max_running
    LIMIT 1
),
unkeyed AS MATERIALIZED (
    SELECT '' AS owner_key,
           CASE WHEN EXISTS (SELECT 1 FROM keyed) THEN (
               SELECT count(*) FROM generations AS p
               WHERE coalesce(p.owner_key, '') = '' AND p.status = 'processing'
           ) ELSE 0 END AS running,
           g.priority, g.created_at, g.id, NULL AS max_running
    FROM generations AS g INDEXED BY generations_lane_queue
    WHERE coalesce(g.owner_key, '') = '' AND g.status = 'pending'
      AND (g.run_after IS NULL OR g.run_after <= :now)
    ORDER BY g.priority DESC, g.created_at, g.id
    LIMIT 1
),
decided AS (
    SELECT * FROM (
        SELECT * FROM keyed AS k
        WHERE NOT EXISTS (
            SELECT 1 FROM unkeyed AS u
            WHERE (-u.priority, u.running, u.created_at, u.id) < (-k.priority, k.running, k.created_at, k.id)
        )
        UNION ALL
        SELECT * FROM unkeyed AS u
        WHERE NOT EXISTS (
            SELECT 1 FROM keyed AS k
            WHERE (-k.priority, k.running, k.created_at, k.id) < (-u.priority, u.running, u.created_at, u.id)
        )
    )
    WHERE NOT EXISTS (
        SELECT 1 FROM keyed JOIN generations AS h ON h.id = keyed.id WHERE h.run_after > :now
    )
)
SELECT owner_key, max_running, 1 AS locked FROM decided
UNION ALL
SELECT NULL, NULL, NULL WHERE NOT EXISTS (
    SELECT 1 FROM keyed JOIN generations AS h ON h.id = keyed.id WHERE h.run_after > :now
)
LIMIT 1;

-- name: claim_fast(worker_id, now, lease_expires_at, default_limit)^
-- The whole claim in one statement: the head queue_decide decides, pending -> processing. The writer lock
-- held since BEGIN IMMEDIATE makes the lane's room, read in the same statement, exact. No row when no job is
-- ready or when queue_decide cannot decide (the claim then ranks every lane).
UPDATE generations
SET status = 'processing',
    worker_id = :worker_id,
    started_at = :now,
    lease_expires_at = :lease_expires_at,
    attempts = attempts + 1
WHERE id = (
    WITH keyed AS MATERIALIZED (
        SELECT l.owner_key, l.running, l.head_priority AS priority, l.head_created_at AS created_at,
               l.head_id AS id, l.max_running
        FROM (
            SELECT l.*,
                   coalesce(
                       (SELECT o.max_running FROM owner_limits AS o WHERE o.owner_key = l.owner_key),
                       CAST(:default_limit AS INTEGER)
                   ) AS max_running
            FROM owner_lanes AS l INDEXED BY owner_lanes_order
            WHERE l.head_id IS NOT NULL
            ORDER BY l.head_priority DESC, l.running, l.head_created_at, l.head_id
        ) AS l
        WHERE l.max_running IS NULL OR l.running < l.max_running
        LIMIT 1
    ),
    unkeyed AS MATERIALIZED (
        SELECT '' AS owner_key,
               CASE WHEN EXISTS (SELECT 1 FROM keyed) THEN (
                   SELECT count(*) FROM generations AS p
                   WHERE coalesce(p.owner_key, '') = '' AND p.status = 'processing'
               ) ELSE 0 END AS running,
               g.priority, g.created_at, g.id, NULL AS max_running
        FROM generations AS g INDEXED BY generations_lane_queue
        WHERE coalesce(g.owner_key, '') = '' AND g.status = 'pending'
          AND (g.run_after IS NULL OR g.run_after <= :now)
        ORDER BY g.priority DESC, g.created_at, g.id
        LIMIT 1
    ),
    decided AS (
        SELECT * FROM (
            SELECT * FROM keyed AS k
            WHERE NOT EXISTS (
                SELECT 1 FROM unkeyed AS u
                WHERE (-u.priority, u.running, u.created_at, u.id) < (-k.priority, k.running, k.created_at, k.id)
            )
            UNION ALL
            SELECT * FROM unkeyed AS u
            WHERE NOT EXISTS (
                SELECT 1 FROM keyed AS k
                WHERE (-k.priority, k.running, k.created_at, k.id) < (-u.priority, u.running, u.created_at, u.id)
            )
        )
        WHERE NOT EXISTS (
            SELECT 1 FROM keyed JOIN generations AS h ON h.id = keyed.id WHERE h.run_after > :now
        )
    )
    SELECT id FROM decided
)
AND status = 'pending'
RETURNING *;
