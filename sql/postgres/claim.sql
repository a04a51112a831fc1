-- The claim on PostgreSQL: under READ COMMITTED two claimers can read the same head, so the head is taken
-- FOR UPDATE SKIP LOCKED (a claimer skips a job another holds and takes the lane's next). A lane with a
-- limit reads its count of processing jobs from its owner_lanes row locked FOR UPDATE (migration 0012):
-- PostgreSQL then reads the row's newest committed version, and every claim, finish or requeue of the lane
-- updates that row (its triggers) in its own transaction, so the count is exact and two claimers cannot both
-- take the last free place. The lane's transaction-scoped advisory lock spreads the claimers that rank lanes
-- (queue_decide, queue_heads) over different lanes.

-- name: claim_lane_head(worker_id, now, lease_expires_at, owner_key, max_running)^
-- pending -> processing for the head of one lane no other claimer holds, while the lane stays under its limit.
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
    FOR UPDATE SKIP LOCKED
)
AND (
    CAST(:max_running AS integer) IS NULL
    OR coalesce(
        (SELECT l.running FROM owner_lanes AS l WHERE l.owner_key = :owner_key FOR UPDATE), 0
    ) < :max_running
)
RETURNING *;

-- name: lock_lane(owner_key)^
-- Wait for the lane's claim lock (held to the end of the transaction).
SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock(15, hashtext(:owner_key))) AS taken;

-- name: try_lock_lane(owner_key)^
-- The lane's claim lock if it is free now: locked is false if another claimer holds it.
SELECT pg_try_advisory_xact_lock(15, hashtext(:owner_key)) AS locked;

-- name: lock_idempotency_key(idempotency_key)^
-- Serialise creations with one idempotency key: the second waits for the first to commit, then finds its row.
SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock(16, hashtext(:idempotency_key))) AS taken;

-- name: queue_decide(now, default_limit)^
-- The lane queue_heads would rank first (owner key, '' for none; its limit), from the lanes' heads as the
-- trigger of migration 0012 keeps them, with the lane's claim lock: the first keyed lane with room in
-- owner_lanes_order (its head's priority, its running jobs, its head's age) whose lock this claim takes now
-- (a lane another claimer holds is skipped, as FOR UPDATE SKIP LOCKED skips a job; when every one is held,
-- the first, locked false: the claim then waits for its lock), against the lane without a key (its first
-- ready job, its running jobs; never locked). A row of NULLs when no lane has a ready job and room; no row
-- when the chosen keyed lane's head waits for its run_after (its first ready job is further on: the claim
-- ranks every lane). The claim then takes the lane's head in a statement of its own, whose snapshot sees
-- every claim of the lane committed before the lock was had.
WITH lanes AS NOT MATERIALIZED (
    SELECT l.owner_key, l.running, l.head_priority AS priority, l.head_created_at AS created_at,
           l.head_id AS id, l.max_running
    FROM (
        SELECT l.owner_key, l.running, l.head_priority, l.head_created_at, l.head_id,
               coalesce(
                   (SELECT o.max_running FROM owner_limits AS o WHERE o.owner_key = l.owner_key),
                   CAST(:default_limit AS integer)
               ) AS max_running
        FROM owner_lanes AS l
        WHERE l.head_id IS NOT NULL
        ORDER BY l.head_priority DESC, l.running, l.head_created_at, l.head_id
    ) AS l
    WHERE l.max_running IS NULL OR l.running < l.max_running
    OFFSET 0
),
free AS MATERIALIZED (
    SELECT lanes.*, true AS locked
    FROM lanes
    WHERE lanes.max_running IS NULL OR pg_try_advisory_xact_lock(15, hashtext(lanes.owner_key))
    LIMIT 1
),
keyed AS MATERIALIZED (
    SELECT * FROM free
    UNION ALL
    SELECT * FROM (SELECT lanes.*, false AS locked FROM lanes LIMIT 1) AS held
    WHERE NOT EXISTS (SELECT 1 FROM free)
),
unkeyed AS MATERIALIZED (
    SELECT '' AS owner_key,
           CASE WHEN EXISTS (SELECT 1 FROM keyed) THEN (
               SELECT count(*) FROM generations AS p
               WHERE coalesce(p.owner_key, '') = '' AND p.status = 'processing'
           )::integer ELSE 0 END AS running,
           g.priority, g.created_at, g.id, CAST(NULL AS integer) AS max_running, true AS locked
    FROM generations AS g
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
    ) AS best
    WHERE NOT EXISTS (
        SELECT 1 FROM keyed JOIN generations AS h ON h.id = keyed.id WHERE h.run_after > :now
    )
)
SELECT owner_key, max_running, locked FROM decided
UNION ALL
SELECT NULL, NULL, NULL WHERE NOT EXISTS (
    SELECT 1 FROM keyed JOIN generations AS h ON h.id = keyed.id WHERE h.run_after > :now
)
LIMIT 1;

-- name: claim_fast(worker_id, now, lease_expires_at, default_limit)^
-- The whole claim in one statement: the first keyed lane with room in owner_lanes_order whose owner_lanes
-- row no other claimer holds, locked FOR UPDATE SKIP LOCKED (as a job is: concurrent claimers take
-- different lanes), against the lane without a key, as queue_decide compares them; the winner's head taken
-- FOR UPDATE SKIP LOCKED. The locked row read is its newest committed version (PostgreSQL re-reads a row it
-- locks and checks the room again), so the lane's running count is exact, and the claim's own trigger
-- updates the row it holds. No row when every such lane is held, when no job is ready, or when the lanes'
-- heads do not decide it (the claim then goes on with queue_decide).
UPDATE generations
SET status = 'processing',
    worker_id = :worker_id,
    started_at = :now,
    lease_expires_at = :lease_expires_at,
    attempts = attempts + 1
WHERE id = (
    WITH keyed AS MATERIALIZED (
        SELECT l.owner_key, l.running, l.head_priority AS priority, l.head_created_at AS created_at,
               l.head_id AS id,
               coalesce(
                   (SELECT o.max_running FROM owner_limits AS o WHERE o.owner_key = l.owner_key),
                   CAST(:default_limit AS integer)
               ) AS max_running
        FROM owner_lanes AS l
        WHERE l.head_id IS NOT NULL
          AND coalesce(
              l.running < coalesce(
                  (SELECT o.max_running FROM owner_limits AS o WHERE o.owner_key = l.owner_key),
                  CAST(:default_limit AS integer)
              ),
              true
          )
        ORDER BY l.head_priority DESC, l.running, l.head_created_at, l.head_id
        LIMIT 1
        FOR UPDATE OF l SKIP LOCKED
    ),
    unkeyed AS MATERIALIZED (
        SELECT '' AS owner_key,
               CASE WHEN EXISTS (SELECT 1 FROM keyed) THEN (
                   SELECT count(*) FROM generations AS p
                   WHERE coalesce(p.owner_key, '') = '' AND p.status = 'processing'
               )::integer ELSE 0 END AS running,
               g.priority, g.created_at, g.id, CAST(NULL AS integer) AS max_running
        FROM generations AS g
        WHERE coalesce(g.owner_key, '') = '' AND g.status = 'pending'
          AND (g.run_after IS NULL OR g.run_after <= :now)
        ORDER BY g.priority DESC, g.created_at, g.id
        LIMIT 1
    ),
    decided AS MATERIALIZED (
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
        ) AS best
        WHERE NOT EXISTS (
            SELECT 1 FROM keyed JOIN generations AS h ON h.id = keyed.id WHERE h.run_after > :now
        )
    )
    SELECT g.id FROM generations AS g
    WHERE coalesce(g.owner_key, '') = (SELECT decided.owner_key FROM decided) AND g.status = 'pending'
      AND (g.run_after IS NULL OR g.run_after <= :now)
      AND (
          (SELECT decided.max_running FROM decided) IS NULL
          OR (SELECT decided.running FROM decided) < (SELECT decided.max_running FROM decided)
      )
    ORDER BY g.priority DESC, g.created_at, g.id
    LIMIT 1
    FOR UPDATE OF g SKIP LOCKED
)
RETURNING *;
