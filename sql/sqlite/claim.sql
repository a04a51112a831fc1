-- The claim on SQLite: the write transaction (BEGIN IMMEDIATE) holds the database's single writer
-- lock, so the subquery and the UPDATE cannot interleave with another claimer.

-- name: claim_next(worker_id, now, lease_expires_at)^
-- pending -> processing for the oldest pending generation.
UPDATE generations
SET status = 'processing',
    worker_id = :worker_id,
    started_at = :now,
    lease_expires_at = :lease_expires_at,
    attempts = attempts + 1
WHERE id = (SELECT id FROM generations WHERE status = 'pending' ORDER BY created_at, id LIMIT 1)
RETURNING *;

-- name: claim_batch(worker_id, now, lease_expires_at, limit)
-- pending -> processing for up to `limit` of the oldest pending generations.
UPDATE generations
SET status = 'processing',
    worker_id = :worker_id,
    started_at = :now,
    lease_expires_at = :lease_expires_at,
    attempts = attempts + 1
WHERE id IN (SELECT id FROM generations WHERE status = 'pending' ORDER BY created_at, id LIMIT :limit)
RETURNING *;
