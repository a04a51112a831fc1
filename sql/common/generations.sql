-- Generations: one row per requested piece of audio. Status changes are single conditional UPDATEs
-- whose row count decides them. Timestamps are bound by the connector in the backend's encoding.

-- name: insert_generation(id, prompt, model_name, model_version, duration_seconds, sample_rate, channels, created_at, metadata, prompt_digest, priority, run_after, owner_key, idempotency_key)!
-- Insert a pending generation; prompt_digest names its prompt (track_prompt ran first, same transaction).
INSERT INTO generations (
    id, prompt, model_name, model_version, duration_seconds, sample_rate, channels,
    status, created_at, attempts, metadata, prompt_digest, priority, run_after, owner_key, idempotency_key
) VALUES (
    :id, :prompt, :model_name, :model_version, :duration_seconds, :sample_rate, :channels,
    'pending', :created_at, 0, :metadata, :prompt_digest, :priority, :run_after, :owner_key, :idempotency_key
);

-- name: get_generation(id)^
-- One generation by id.
SELECT * FROM generations WHERE id = :id;

-- name: get_generation_for_update(id)^
-- One generation by id, to be updated in the same transaction.
SELECT * FROM generations WHERE id = :id;

-- name: heartbeat(id, worker_id, lease_expires_at)!
-- Extend the lease of a generation the worker still owns.
UPDATE generations
SET lease_expires_at = :lease_expires_at
WHERE id = :id AND status = 'processing' AND worker_id = :worker_id;

-- name: complete_generation(id, worker_id, now, file_path, file_size_bytes, generation_time_seconds, metadata)!
-- processing -> completed (only by the owning worker when worker_id is given).
UPDATE generations
SET status = 'completed',
    completed_at = :now,
    file_path = :file_path,
    file_size_bytes = :file_size_bytes,
    storage_url = NULL,
    storage_key = :file_path,
    checksum = NULL,
    generation_time_seconds = :generation_time_seconds,
    metadata = :metadata,
    error_message = NULL,
    lease_expires_at = NULL
WHERE id = :id AND status = 'processing'
  AND (CAST(:worker_id AS TEXT) IS NULL OR worker_id = :worker_id);

-- name: fail_generation(id, worker_id, now, error_message)!
-- processing -> failed.
UPDATE generations
SET status = 'failed',
    error_message = :error_message,
    completed_at = :now,
    lease_expires_at = NULL
WHERE id = :id AND status = 'processing'
  AND (CAST(:worker_id AS TEXT) IS NULL OR worker_id = :worker_id);

-- name: cancel_generation(id, now, reason)!
-- pending|processing -> cancelled.
UPDATE generations
SET status = 'cancelled',
    error_message = :reason,
    completed_at = :now,
    lease_expires_at = NULL
WHERE id = :id AND status IN ('pending', 'processing');

-- name: fail_expired(now, max_attempts)
-- processing -> failed for every expired lease with no attempts left.
UPDATE generations
SET status = 'failed',
    error_message = 'lease expired on the last allowed attempt',
    completed_at = :now,
    lease_expires_at = NULL
WHERE status = 'processing' AND lease_expires_at <= :now AND attempts >= :max_attempts
RETURNING id;

-- name: delete_generation(id)!
-- Delete a generation that no worker is processing.
DELETE FROM generations WHERE id = :id AND status <> 'processing';

-- name: delete_all_generations()!
DELETE FROM generations;

-- name: delete_all_lanes()!
-- The lanes' rows, once no generation is left (migration 0012): their counts and heads are empty, and when
-- each was last served (0015) is forgotten.
DELETE FROM owner_lanes;

-- name: list_pending(limit)
-- The queue: oldest pending first.
SELECT * FROM generations
WHERE status = 'pending'
ORDER BY created_at, id
LIMIT :limit;

-- name: list_generations(before_created_at, before_id, limit, offset)
-- Newest first; (before_created_at, before_id) is the keyset cursor.
SELECT * FROM generations
WHERE (created_at, id) < (:before_created_at, :before_id)
ORDER BY created_at DESC, id DESC
LIMIT :limit OFFSET :offset;

-- name: list_generations_by_status(status, before_created_at, before_id, limit, offset)
SELECT * FROM generations
WHERE status = :status AND (created_at, id) < (:before_created_at, :before_id)
ORDER BY created_at DESC, id DESC
LIMIT :limit OFFSET :offset;

-- name: list_generations_by_model(model_name, before_created_at, before_id, limit, offset)
SELECT * FROM generations
WHERE model_name = :model_name AND (created_at, id) < (:before_created_at, :before_id)
ORDER BY created_at DESC, id DESC
LIMIT :limit OFFSET :offset;

-- name: list_generations_by_status_and_model(status, model_name, before_created_at, before_id, limit, offset)
SELECT * FROM generations
WHERE status = :status AND model_name = :model_name
  AND (created_at, id) < (:before_created_at, :before_id)
ORDER BY created_at DESC, id DESC
LIMIT :limit OFFSET :offset;

-- name: count_by_model(model_name)^
-- From the running totals by (model, status) that triggers keep (migration 0005): a few rows at any size.
SELECT CAST(coalesce(sum(generations), 0) AS BIGINT) AS n
FROM generation_model_totals
WHERE model_name = :model_name;

-- name: count_by_status_and_model(status, model_name)^
SELECT CAST(coalesce(sum(generations), 0) AS BIGINT) AS n
FROM generation_model_totals
WHERE model_name = :model_name AND status = :status;
