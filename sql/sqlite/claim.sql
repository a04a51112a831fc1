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
