-- Renditions: files made from a generation's master (migration 0007). A row goes with its generation
-- (ON DELETE CASCADE). Lookups by generation use the UNIQUE (generation_id, format, settings) index.

-- name: insert_rendition(id, generation_id, format, codec, bitrate_mode, bitrate_kbps, quality, sample_rate, channels, settings, profile, target_lufs, ceiling_dbtp, storage_key, file_size_bytes, duration_seconds, loudness_lufs, true_peak_dbtp, loudness_status, checksum, created_at)!
-- Record a rendition; the unique keys refuse a second row for one request or one file.
INSERT INTO renditions (
    id, generation_id, format, codec, bitrate_mode, bitrate_kbps, quality, sample_rate, channels, settings,
    profile, target_lufs, ceiling_dbtp, storage_key, file_size_bytes, duration_seconds, loudness_lufs,
    true_peak_dbtp, loudness_status, checksum, created_at
) VALUES (
    :id, :generation_id, :format, :codec, :bitrate_mode, :bitrate_kbps, :quality, :sample_rate, :channels,
    :settings, :profile, :target_lufs, :ceiling_dbtp, :storage_key, :file_size_bytes, :duration_seconds,
    :loudness_lufs, :true_peak_dbtp, :loudness_status, :checksum, :created_at
);

-- name: get_rendition(id)^
-- One rendition by id.
SELECT * FROM renditions WHERE id = :id;

-- name: get_rendition_by_settings(generation_id, format, settings)^
-- The rendition a request (generation, format, canonical settings) already made, if any.
SELECT * FROM renditions
WHERE generation_id = :generation_id AND format = :format AND settings = :settings;

-- name: get_rendition_by_storage_key(storage_key)^
-- The rendition recorded at this key, if any (the unique index on storage_key).
SELECT * FROM renditions WHERE storage_key = :storage_key;

-- name: list_renditions(generation_id)
-- A generation's renditions, in the order of the unique index (format, then settings).
SELECT * FROM renditions
WHERE generation_id = :generation_id
ORDER BY generation_id, format, settings;

-- name: maintenance_renditions_after(after_id, limit)
-- Every rendition's file and recorded size, in id order (reconcile's keyset paging over the primary key).
SELECT id, generation_id, storage_key, file_size_bytes
FROM renditions
WHERE id > :after_id
ORDER BY id
LIMIT :limit;

-- name: maintenance_delete_rendition(id, storage_key, file_size_bytes, storage_url)!
-- Reconcile's repair of a rendition whose file is missing or has another size: its row goes, only if it is
-- still exactly as read, its generation's files in the store it was read in (copy_files may have moved them
-- since) (the rendition can be made again).
DELETE FROM renditions
WHERE id = :id AND storage_key = :storage_key AND file_size_bytes = :file_size_bytes
  AND EXISTS (
        SELECT 1 FROM generations g
        WHERE g.id = renditions.generation_id
          AND (g.storage_url = CAST(:storage_url AS TEXT) OR (g.storage_url IS NULL AND CAST(:storage_url AS TEXT) IS NULL))
    );

-- name: update_completed_metadata(id, metadata)!
-- Replace a completed generation's metadata (the caller merged it under the row lock of
-- get_generation_for_update); a generation in any other status is left alone (row count 0).
UPDATE generations SET metadata = :metadata WHERE id = :id AND status = 'completed';

-- name: rendition_totals()^
-- How many renditions, and the bytes of their files: the running totals of migration 0011 (one row on
-- SQLite, up to 16 shards on PostgreSQL), never the renditions table itself.
SELECT coalesce(sum(renditions), 0) AS renditions, coalesce(sum(file_bytes), 0) AS file_bytes
FROM rendition_totals;
