-- The claim on PostgreSQL: under READ COMMITTED two claimers can read the same head, so the head is taken
-- FOR UPDATE SKIP LOCKED (a claimer skips a job another holds and takes the lane's next). A lane with a
-- limit is first locked for the transaction (a transaction-scoped advisory lock on its key): the claim's own
-- statement then starts after every earlier claim of that lane committed, so its count of the lane's
-- processing jobs is exact and two claimers cannot both take the last free place.

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
    OR (
        SELECT count(*) FROM generations AS p
        WHERE coalesce(p.owner_key, '') = :owner_key AND p.status = 'processing'
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
