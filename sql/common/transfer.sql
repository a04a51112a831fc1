-- Moving rows between stores (e.g. SQLite -> PostgreSQL), in id order, idempotently.

-- name: prompts_after(after_id, limit)
SELECT id, text, used_count, first_used_at, last_used_at
FROM prompts WHERE id > :after_id ORDER BY id LIMIT :limit;

-- name: import_prompt(digest, text, used_count, first_used_at, last_used_at)!
-- Insert a prompt with its usage; a prompt already there keeps the larger count and the wider time span.
-- Changes no row (count 0) if another text has the digest.
INSERT INTO prompts (digest, text, used_count, first_used_at, last_used_at)
VALUES (:digest, :text, :used_count, :first_used_at, :last_used_at)
ON CONFLICT (digest) DO UPDATE
SET used_count = CASE WHEN excluded.used_count > prompts.used_count
                      THEN excluded.used_count ELSE prompts.used_count END,
    first_used_at = CASE WHEN excluded.first_used_at < prompts.first_used_at
                         THEN excluded.first_used_at ELSE prompts.first_used_at END,
    last_used_at = CASE WHEN excluded.last_used_at > prompts.last_used_at
                        THEN excluded.last_used_at ELSE prompts.last_used_at END
WHERE prompts.text = excluded.text;

-- name: generations_after(after_id, limit)
SELECT * FROM generations WHERE id > :after_id ORDER BY id LIMIT :limit;

-- name: import_generation(id, prompt, model_name, model_version, duration_seconds, sample_rate, channels, status, file_path, file_size_bytes, created_at, started_at, completed_at, generation_time_seconds, error_message, attempts, worker_id, lease_expires_at, metadata, prompt_digest, progress, stage, progress_at, priority, run_after, owner_key, idempotency_key)!
-- Insert a generation exactly as it was (with its queue fields of 0008 and progress of 0009); one already
-- there (same id) is left alone. Where its file lives (0006) follows in import_storage.
INSERT INTO generations (
    id, prompt, model_name, model_version, duration_seconds, sample_rate, channels, status, file_path,
    file_size_bytes, created_at, started_at, completed_at, generation_time_seconds, error_message, attempts,
    worker_id, lease_expires_at, metadata, prompt_digest, progress, stage, progress_at, priority, run_after,
    owner_key, idempotency_key
) VALUES (
    :id, :prompt, :model_name, :model_version, :duration_seconds, :sample_rate, :channels, :status, :file_path,
    :file_size_bytes, :created_at, :started_at, :completed_at, :generation_time_seconds, :error_message, :attempts,
    :worker_id, :lease_expires_at, :metadata, :prompt_digest, :progress, :stage, :progress_at, :priority,
    :run_after, :owner_key, :idempotency_key
)
ON CONFLICT (id) DO NOTHING;

-- name: renditions_after(after_id, limit)
-- Renditions with ids above after_id, in id order (copying them after their generations).
SELECT * FROM renditions WHERE id > :after_id ORDER BY id LIMIT :limit;

-- name: import_rendition(id, generation_id, format, codec, bitrate_mode, bitrate_kbps, quality, sample_rate, channels, settings, profile, target_lufs, ceiling_dbtp, storage_key, file_size_bytes, duration_seconds, loudness_lufs, true_peak_dbtp, loudness_status, checksum, created_at)!
-- Insert a rendition exactly as it was; one already there (same id) is left alone.
INSERT INTO renditions (
    id, generation_id, format, codec, bitrate_mode, bitrate_kbps, quality, sample_rate, channels, settings,
    profile, target_lufs, ceiling_dbtp, storage_key, file_size_bytes, duration_seconds, loudness_lufs,
    true_peak_dbtp, loudness_status, checksum, created_at
) VALUES (
    :id, :generation_id, :format, :codec, :bitrate_mode, :bitrate_kbps, :quality, :sample_rate, :channels,
    :settings, :profile, :target_lufs, :ceiling_dbtp, :storage_key, :file_size_bytes, :duration_seconds,
    :loudness_lufs, :true_peak_dbtp, :loudness_status, :checksum, :created_at
)
ON CONFLICT (id) DO NOTHING;

-- name: lanes_served_after(after_key, never, limit)
-- The keyed lanes' last service (owner_lanes.served_at), by key: what the round robin orders lanes by, which
-- no row keeps (a lane whose jobs all finished keeps it). ``never``: a lane never served (the epoch; SQLite:
-- 0).
SELECT owner_key, served_at FROM owner_lanes
WHERE owner_key > :after_key AND served_at <> :never
ORDER BY owner_key
LIMIT :limit;
