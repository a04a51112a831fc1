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
-- is held), from the lanes' heads as the triggers of migration 0012 keep them: the first keyed lane with room
-- in owner_lanes_order (its head's priority, its running jobs, when it was last served (0015), its head's
-- age) against the lane without a key (its first ready job, its running jobs, its jobs' latest start). A row
-- of NULLs when no lane has a ready job and room; no row when that first keyed lane's head waits for its
-- run_after (its lane's first ready job is further on: the claim ranks every lane).
WITH keyed AS MATERIALIZED (
    SELECT l.owner_key, l.running, l.served_at, l.head_priority AS priority, l.head_created_at AS created_at,
           l.head_id AS id, l.max_running
    FROM (
        SELECT l.*,
               coalesce(
                   (SELECT o.max_running FROM owner_limits AS o WHERE o.owner_key = l.owner_key),
                   CAST(:default_limit AS INTEGER)
               ) AS max_running
        FROM owner_lanes AS l INDEXED BY owner_lanes_order
        WHERE l.head_id IS NOT NULL
        ORDER BY l.head_priority DESC, l.running, l.served_at, l.head_created_at, l.head_id
    ) AS l
    WHERE l.max_running IS NULL OR l.running < l.max_running
    LIMIT 1
),
unkeyed AS MATERIALIZED (
    SELECT '' AS owner_key,
           CASE WHEN EXISTS (SELECT 1 FROM keyed) THEN (
               SELECT count(*) FROM generations AS p
               WHERE p.owner_key IS NULL AND p.status = 'processing'
           ) ELSE 0 END AS running,
           CASE WHEN EXISTS (SELECT 1 FROM keyed) THEN coalesce((
               SELECT max(s.started_at) FROM generations AS s
               WHERE s.owner_key IS NULL AND s.started_at IS NOT NULL
           ), 0) ELSE 0 END AS served_at,
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
            WHERE (-u.priority, u.running, u.served_at, u.created_at, u.id)
                < (-k.priority, k.running, k.served_at, k.created_at, k.id)
        )
        UNION ALL
        SELECT * FROM unkeyed AS u
        WHERE NOT EXISTS (
            SELECT 1 FROM keyed AS k
            WHERE (-k.priority, k.running, k.served_at, k.created_at, k.id)
                < (-u.priority, u.running, u.served_at, u.created_at, u.id)
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
-- The whole claim in one statement, pending -> processing, or no row when no lane has a ready job and room
-- (the claim is then over: nothing else is run). The writer lock held since BEGIN IMMEDIATE makes the lanes'
-- counts, read in the same statement, exact. Which job: the first keyed lane with room in owner_lanes_order
-- (k: its head's priority, its running jobs, when it was last served, its head's age; one probe) against the
-- first ready job without a key (u), compared as queue_heads ranks them (the running jobs without a key are
-- counted, in generations_unkeyed_running (0013), and their latest start read, in generations_unkeyed_served
-- (0015), only when the two heads' priorities tie). When that keyed lane's head waits for its run_after (h:
-- its first ready job is further on, so the index does not rank the lane), every lane is ranked instead as
-- queue_heads does, in the same statement (a branch the common claim never runs; a keyed lane's running jobs
-- are its owner_lanes row's count). No CTE is materialized and nothing is sorted outside that branch: each
-- side is a scalar subquery, evaluated once, and the lanes' and jobs' rows are read by primary key.
UPDATE generations
SET status = 'processing',
    worker_id = :worker_id,
    started_at = :now,
    lease_expires_at = :lease_expires_at,
    attempts = attempts + 1
WHERE id = (
    SELECT CASE
        WHEN k.owner_key IS NULL THEN u.id
        WHEN h.run_after > :now THEN (
            WITH RECURSIVE lanes (owner_key) AS (
                SELECT (
                    SELECT coalesce(owner_key, '') FROM generations INDEXED BY generations_lane_queue
                    WHERE status = 'pending'
                    ORDER BY coalesce(owner_key, '')
                    LIMIT 1
                )
                UNION ALL
                SELECT (
                    SELECT coalesce(g.owner_key, '') FROM generations AS g INDEXED BY generations_lane_queue
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
                       CASE WHEN lanes.owner_key = '' THEN (
                           SELECT count(*) FROM generations AS p
                           WHERE p.owner_key IS NULL AND p.status = 'processing'
                       ) ELSE (
                           SELECT coalesce(max(r.running), 0) FROM owner_lanes AS r
                           WHERE r.owner_key = lanes.owner_key
                       ) END AS running,
                       CASE WHEN lanes.owner_key = '' THEN coalesce((
                           SELECT max(s.started_at) FROM generations AS s
                           WHERE s.owner_key IS NULL AND s.started_at IS NOT NULL
                       ), 0) ELSE (
                           SELECT coalesce(max(r.served_at), 0) FROM owner_lanes AS r
                           WHERE r.owner_key = lanes.owner_key
                       ) END AS served_at,
                       CASE WHEN lanes.owner_key = '' THEN NULL
                            ELSE coalesce(
                                (SELECT o.max_running FROM owner_limits AS o WHERE o.owner_key = lanes.owner_key),
                                CAST(:default_limit AS INTEGER)
                            )
                       END AS max_running
                FROM lanes
                WHERE lanes.owner_key IS NOT NULL
            )
            SELECT head.id
            FROM heads CROSS JOIN generations AS head ON head.id = heads.head_id
            WHERE heads.max_running IS NULL OR heads.running < heads.max_running
            ORDER BY head.priority DESC, heads.running, heads.served_at, head.created_at, head.id
            LIMIT 1
        )
        WHEN u.id IS NULL THEN k.head_id
        WHEN u.priority <> k.head_priority THEN
            CASE WHEN u.priority > k.head_priority THEN u.id ELSE k.head_id END
        WHEN (
            (
                SELECT count(*) FROM generations AS p
                WHERE p.owner_key IS NULL AND p.status = 'processing'
            ),
            coalesce((
                SELECT max(s.started_at) FROM generations AS s
                WHERE s.owner_key IS NULL AND s.started_at IS NOT NULL
            ), 0),
            u.created_at,
            u.id
        ) < (k.running, k.served_at, k.head_created_at, k.head_id) THEN u.id
        ELSE k.head_id
    END
    FROM (SELECT 1) AS one
    LEFT JOIN owner_lanes AS k ON k.owner_key = (
        SELECT l.owner_key FROM owner_lanes AS l INDEXED BY owner_lanes_order
        WHERE l.head_id IS NOT NULL
          AND coalesce(
              l.running < coalesce(
                  (SELECT o.max_running FROM owner_limits AS o WHERE o.owner_key = l.owner_key),
                  CAST(:default_limit AS INTEGER)
              ),
              1
          )
        ORDER BY l.head_priority DESC, l.running, l.served_at, l.head_created_at, l.head_id
        LIMIT 1
    )
    LEFT JOIN generations AS h ON h.id = k.head_id
    LEFT JOIN generations AS u ON u.id = (
        SELECT g.id FROM generations AS g INDEXED BY generations_lane_queue
        WHERE coalesce(g.owner_key, '') = '' AND g.status = 'pending'
          AND (g.run_after IS NULL OR g.run_after <= :now)
        ORDER BY g.priority DESC, g.created_at, g.id
        LIMIT 1
    )
)
AND status = 'pending'
RETURNING *;
