-- Retries put back with a backoff (migration 0008): run_after = now + min(cap, base * 2^(attempts - 1)),
-- less a random part of up to `jitter` of it (SQLite's random(), per row); base 0: at once (run_after NULL).

-- name: retry_generation(id, worker_id, error_message, max_attempts, now, base_seconds, cap_seconds, jitter)!
-- processing -> pending, while attempts remain, claimable again after its backoff.
UPDATE generations
SET status = 'pending',
    error_message = :error_message,
    worker_id = NULL,
    started_at = NULL,
    lease_expires_at = NULL,
    run_after = CASE WHEN :base_seconds > 0 THEN :now + CAST(
        min(:cap_seconds, :base_seconds * (1 << min(max(attempts - 1, 0), 40)))
        * (1.0 - :jitter * (abs(random() % 1000000) / 1000000.0)) * 1000000 AS INTEGER) END
WHERE id = :id AND status = 'processing' AND attempts < :max_attempts
  AND (CAST(:worker_id AS TEXT) IS NULL OR worker_id = :worker_id);

-- name: requeue_expired(now, max_attempts, base_seconds, cap_seconds, jitter)
-- processing -> pending for every expired lease with attempts left, each after its backoff.
UPDATE generations
SET status = 'pending',
    error_message = 'lease expired',
    worker_id = NULL,
    started_at = NULL,
    lease_expires_at = NULL,
    run_after = CASE WHEN :base_seconds > 0 THEN :now + CAST(
        min(:cap_seconds, :base_seconds * (1 << min(max(attempts - 1, 0), 40)))
        * (1.0 - :jitter * (abs(random() % 1000000) / 1000000.0)) * 1000000 AS INTEGER) END
WHERE status = 'processing' AND lease_expires_at <= :now AND attempts < :max_attempts
RETURNING id;
