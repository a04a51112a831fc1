-- PostgreSQL's own versions of generation queries.

-- name: get_generation_for_update(id)^
-- One generation by id, locked until the end of the transaction (READ COMMITTED needs the lock where
-- SQLite's single writer already excludes others).
SELECT * FROM generations WHERE id = :id FOR UPDATE;

-- name: fail_expired(now, max_attempts)
-- processing -> failed for every expired lease with no attempts left; a row another transaction holds is
-- skipped, as requeue_expired skips one (sql/postgres/queue.sql).
UPDATE generations
SET status = 'failed',
    error_message = 'lease expired on the last allowed attempt',
    completed_at = :now,
    lease_expires_at = NULL
WHERE id IN (
        SELECT id FROM generations
        WHERE status = 'processing' AND lease_expires_at <= :now AND attempts >= :max_attempts
        FOR UPDATE SKIP LOCKED
    )
  AND status = 'processing' AND lease_expires_at <= :now AND attempts >= :max_attempts
RETURNING id;
