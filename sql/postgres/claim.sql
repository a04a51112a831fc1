-- The claim on PostgreSQL: under READ COMMITTED two claimers can read the same oldest pending id, so the
-- sub-select locks the row it picks and skips rows another claimer already holds (FOR UPDATE SKIP LOCKED).

-- name: claim_next(worker_id, now, lease_expires_at)^
-- pending -> processing for the oldest pending generation no other claimer holds.
UPDATE generations
SET status = 'processing',
    worker_id = :worker_id,
    started_at = :now,
    lease_expires_at = :lease_expires_at,
    attempts = attempts + 1
WHERE id = (
    SELECT id FROM generations
    WHERE status = 'pending'
    ORDER BY created_at, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING *;

-- name: claim_batch(worker_id, now, lease_expires_at, limit)
-- pending -> processing for up to `limit` of the oldest pending generations no other claimer holds.
UPDATE generations
SET status = 'processing',
    worker_id = :worker_id,
    started_at = :now,
    lease_expires_at = :lease_expires_at,
    attempts = attempts + 1
WHERE id IN (
    SELECT id FROM generations
    WHERE status = 'pending'
    ORDER BY created_at, id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
RETURNING *;
