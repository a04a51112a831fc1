-- The claim on PostgreSQL: under READ COMMITTED two claimers can read the same head, so the head is taken
-- FOR UPDATE SKIP LOCKED (a claimer skips a job another holds and takes the lane's next). A lane with a
-- limit reads its count of processing jobs from its owner_lanes row locked FOR UPDATE (migration 0012):
-- PostgreSQL then reads the row's newest committed version, and every claim, finish or requeue of the lane
-- updates that row (its triggers) in its own transaction, so the count is exact and two claimers cannot both
-- take the last free place. The lane's transaction-scoped advisory lock spreads the claimers that rank lanes
-- (queue_decide, queue_heads) over different lanes.
-- Every write of a job takes its session's shard of generation_totals (mod(pg_backend_pid(), 16): the first
-- trigger on generations, generations_count) before its lane's owner_lanes row (the lanes' trigger, after
-- it), and holds the shard to its commit: a transaction's shard comes before any lane it writes later. A
-- claim locks its lane's row before its job's UPDATE (whose trigger updates the shard's processing and
-- pending rows), so it takes those two rows first, in that order (a requeue's trigger's: old status, then
-- new), before any lane's row or claim lock: claim_fast in its own statement, queue_decide for the claim
-- that follows it (claim_lane_head, in the same transaction). The lock is the function
-- musicstore_lock_shard() (migration 0026), called once a statement (an uncorrelated sub-select): the
-- session keeps its statements' plans, where two locking sub-selects in the claims' own statements cost
-- about 20-60 µs of CPU a claim. A claim that held a lane's row and waited for its shard deadlocked with an
-- enqueue of that lane on the same shard (holding the shard's pending row, waiting for the lane's), until
-- PostgreSQL broke it after deadlock_timeout (1 s).

-- name: claim_lane_head(worker_id, now, lease_expires_at, owner_key, max_running)^
-- pending -> processing for the head of one lane no other claimer holds, while the lane stays under its limit.
-- Run after queue_decide in the same transaction, which took the session's shard of the totals first.
-- The lane's owner_lanes row is locked first, with a limit or without: the claim's trigger then recomputes the
-- lane's head without waiting for the row, so from a snapshot taken after every enqueue of the lane before it
-- committed (a later one waits for this claim, and recomputes the head after it). Without a limit the row was
-- not locked here: the trigger's update waited for an enqueue that held it, then wrote the head it had read
-- before that enqueue committed (none: the claimed job was the only one it saw), and the new job stayed
-- pending and unclaimable (no claim looks at a lane without a head) until the lane changed again.
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
AND coalesce(
    (SELECT l.running FROM owner_lanes AS l WHERE l.owner_key = :owner_key FOR UPDATE), 0
) < coalesce(CAST(:max_running AS integer), 2147483647)
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
-- owner_lanes_order (its head's priority, its running jobs, when it was last served, its head's age) whose
-- lock this claim takes now (a lane another claimer holds is skipped, as FOR UPDATE SKIP LOCKED skips a job;
-- when every one is held, the first, locked false: the claim then waits for its lock), against the lane
-- without a key (its first ready job, its running jobs, its jobs' latest start; never locked). A row of NULLs
-- when no lane has a ready job and room; no row when the chosen keyed lane's head waits for its run_after
-- (its first ready job is further on: the claim ranks every lane). The claim then takes the lane's head in a
-- statement of its own, whose snapshot sees every claim of the lane committed before the lock was had.
WITH lanes AS NOT MATERIALIZED (
    SELECT l.owner_key, l.running, l.served_at, l.head_priority AS priority, l.head_created_at AS created_at,
           l.head_id AS id, l.max_running
    FROM (
        SELECT l.owner_key, l.running, l.served_at, l.head_priority, l.head_created_at, l.head_id,
               coalesce(
                   (SELECT o.max_running FROM owner_limits AS o WHERE o.owner_key = l.owner_key),
                   CAST(:default_limit AS integer)
               ) AS max_running
        FROM owner_lanes AS l
        WHERE l.head_id IS NOT NULL
        ORDER BY l.head_priority DESC, l.running, l.served_at, l.head_created_at, l.head_id
    ) AS l
    WHERE l.max_running IS NULL OR l.running < l.max_running
    OFFSET 0
),
free AS MATERIALIZED (
    SELECT lanes.*, true AS locked
    FROM lanes
    WHERE (SELECT musicstore_lock_shard())  -- the shard's totals first (once), then lanes' locks
      AND (lanes.max_running IS NULL OR pg_try_advisory_xact_lock(15, hashtext(lanes.owner_key)))
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
           CASE WHEN EXISTS (SELECT 1 FROM keyed) THEN coalesce((
               SELECT max(s.started_at) FROM generations AS s
               WHERE s.owner_key IS NULL AND s.started_at IS NOT NULL
           ), timestamptz 'epoch') ELSE timestamptz 'epoch' END AS served_at,
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
-- The whole claim in one statement, pending -> processing: the first keyed lane with room in
-- owner_lanes_order whose owner_lanes row no other claimer holds, locked FOR UPDATE SKIP LOCKED (as a job is:
-- concurrent claimers take different lanes; k), against the first ready job without a key (u), compared as
-- queue_heads ranks them (the running jobs without a key are counted, and their latest start read in
-- generations_unkeyed_served (0015), only when the two heads' priorities tie); the winning lane's first ready
-- job taken FOR UPDATE SKIP LOCKED. The locked row read is its newest committed version (PostgreSQL re-reads
-- a row it locks and checks the room again), so the lane's running count is exact, and the claim's own
-- trigger updates the row it holds. Returns the claimed row; no row when no lane has a ready job and room
-- (nothing to claim: the claim is over); a row of NULLs when nothing was taken though a lane may have one:
-- another claimer held the lanes or the jobs, or the keyed lane's head waits for its run_after (the lane
-- row's head_run_after, migration 0014: its first ready job is further on, so the index does not rank the
-- lane). A lane's row that another claim changed after this statement began is locked and checked for room in
-- its newest version, as a job is. The claim then goes on with queue_decide.
WITH claimed AS (
    UPDATE generations
    SET status = 'processing',
        worker_id = :worker_id,
        started_at = :now,
        lease_expires_at = :lease_expires_at,
        attempts = attempts + 1
    WHERE id = (
        SELECT g.id FROM generations AS g
        WHERE coalesce(g.owner_key, '') = (
            SELECT CASE
                WHEN k.owner_key IS NULL THEN CASE WHEN u.id IS NOT NULL THEN '' END
                WHEN k.run_after > :now THEN NULL
                WHEN u.id IS NULL THEN k.owner_key
                WHEN u.priority <> k.head_priority THEN
                    CASE WHEN u.priority > k.head_priority THEN '' ELSE k.owner_key END
                WHEN (
                    (
                        SELECT count(*) FROM generations AS p
                        WHERE coalesce(p.owner_key, '') = '' AND p.status = 'processing'
                    )::integer,
                    coalesce((
                        SELECT max(s.started_at) FROM generations AS s
                        WHERE s.owner_key IS NULL AND s.started_at IS NOT NULL
                    ), timestamptz 'epoch'),
                    u.created_at,
                    u.id
                ) < (k.running, k.served_at, k.head_created_at, k.head_id) THEN ''
                ELSE k.owner_key
            END
            FROM (SELECT 1) AS one
            LEFT JOIN LATERAL (
                SELECT l.owner_key, l.running, l.served_at, l.head_priority, l.head_created_at, l.head_id,
                       l.head_run_after AS run_after
                FROM owner_lanes AS l
                WHERE l.head_id IS NOT NULL
                  AND coalesce(
                      l.running < coalesce(
                          (SELECT o.max_running FROM owner_limits AS o WHERE o.owner_key = l.owner_key),
                          CAST(:default_limit AS integer)
                      ),
                      true
                  )
                  -- the shard's totals before the lane's row: taken at the first lane with a head
                  AND CASE WHEN l.head_id IS NOT NULL THEN (SELECT musicstore_lock_shard()) END
                ORDER BY l.head_priority DESC, l.running, l.served_at, l.head_created_at, l.head_id
                LIMIT 1
                FOR UPDATE OF l SKIP LOCKED
            ) AS k ON true
            LEFT JOIN generations AS u ON u.id = (
                SELECT f.id FROM generations AS f
                WHERE coalesce(f.owner_key, '') = '' AND f.status = 'pending'
                  AND (f.run_after IS NULL OR f.run_after <= :now)
                ORDER BY f.priority DESC, f.created_at, f.id
                LIMIT 1
            )
        )
          AND g.status = 'pending'
          AND (g.run_after IS NULL OR g.run_after <= :now)
        ORDER BY g.priority DESC, g.created_at, g.id
        LIMIT 1
        FOR UPDATE OF g SKIP LOCKED
    )
    RETURNING generations.*
)
SELECT * FROM claimed
UNION ALL
SELECT (NULL::generations).*
WHERE NOT EXISTS (SELECT 1 FROM claimed)
  AND (
      (
          SELECT l.owner_key FROM owner_lanes AS l
          WHERE l.head_id IS NOT NULL
            AND coalesce(
                l.running < coalesce(
                    (SELECT o.max_running FROM owner_limits AS o WHERE o.owner_key = l.owner_key),
                    CAST(:default_limit AS integer)
                ),
                true
            )
          ORDER BY l.head_priority DESC, l.running, l.served_at, l.head_created_at, l.head_id
          LIMIT 1
      ) IS NOT NULL
      OR (
          SELECT f.id FROM generations AS f
          WHERE coalesce(f.owner_key, '') = '' AND f.status = 'pending'
            AND (f.run_after IS NULL OR f.run_after <= :now)
          ORDER BY f.priority DESC, f.created_at, f.id
          LIMIT 1
      ) IS NOT NULL
  );
