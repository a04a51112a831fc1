-- PostgreSQL's versions of the maintenance queries: lists arrive as JSON arrays, timestamps are timestamptz.
-- metadata's "peaks" is read through jsonb, which refuses a \u0000 in a string: rows of the first versions may
-- hold one (later versions refuse it), so it is read as \ufffd first, and one such row does not fail the run.

-- name: maintenance_generations_by_ids(ids)
-- The rows with these ids (a JSON array of strings); `peaks`: the recorded waveform peaks file (metadata's
-- "peaks" as JSON text), NULL when none; `storage_url`: the store holding its files (NULL: a local root).
SELECT id, status, file_path, storage_url, CAST(CAST(replace(metadata, E'\\u0000', E'\\ufffd') AS jsonb) -> 'peaks' AS TEXT) AS peaks
FROM generations
WHERE id IN (SELECT json_array_elements_text(CAST(:ids AS json)));

-- name: maintenance_generations_by_file_paths(paths)
-- The rows that record one of these files (a JSON array of paths relative to the output root).
SELECT id, status, file_path FROM generations
WHERE file_path IN (SELECT json_array_elements_text(CAST(:paths AS json)));

-- name: maintenance_storage_by_day()
-- Counts and bytes by UTC day of creation, from the running totals by day (migration 0005), summed over
-- their shards in the primary key's order; days whose generations are all gone (sums at zero) are left out.
SELECT to_char(t.day, 'YYYY-MM-DD') AS day,
       CAST(sum(t.generations) AS BIGINT) AS generations,
       CAST(sum(t.file_bytes) AS BIGINT) AS file_bytes
FROM generation_day_totals AS t
GROUP BY t.day
HAVING sum(t.generations) > 0
ORDER BY t.day;

-- name: maintenance_completed_files_after(after_id, limit)
-- Completed generations and their recorded files on a local root (not those in an object store, 0006),
-- in id order (keyset paging over the primary key); `storage_url` says which folder (NULL: before 0006),
-- reconcile judges only the rows of the root it was given. `peaks`: the recorded waveform peaks file
-- (metadata's "peaks" as JSON text), NULL when none.
SELECT id, file_path, file_size_bytes, checksum, CAST(CAST(replace(metadata, E'\\u0000', E'\\ufffd') AS jsonb) -> 'peaks' AS TEXT) AS peaks,
       storage_url
FROM generations
WHERE status = 'completed' AND id > :after_id
  AND (storage_url IS NULL OR substr(storage_url, 1, 5) = 'file:')  -- on this host, not in an object store
ORDER BY id
LIMIT :limit;

-- name: maintenance_cleanup_candidates(status_1, status_2, status_3, status_4, model_name, before, after_created_at, after_id, limit)
-- Generations retention may delete, oldest first: one of up to four statuses (unused ones NULL), optionally
-- one model, created before `before`; (after_created_at, after_id) is the keyset cursor. `peaks`: the
-- recorded waveform peaks file (metadata's "peaks" as JSON text), NULL when none.
SELECT id, status, model_name, created_at, file_path, file_size_bytes, storage_url,
       CAST(CAST(replace(metadata, E'\\u0000', E'\\ufffd') AS jsonb) -> 'peaks' AS TEXT) AS peaks
FROM generations
WHERE status IN (:status_1, :status_2, :status_3, :status_4)
  AND status <> 'processing'
  AND (CAST(:model_name AS TEXT) IS NULL OR model_name = :model_name)
  AND created_at < :before
  AND (created_at, id) > (:after_created_at, :after_id)
ORDER BY created_at, id
LIMIT :limit;

-- name: maintenance_renditions_by_storage_keys(paths)
-- The renditions stored at one of these keys (a JSON array of paths relative to the output root).
SELECT generation_id, storage_key FROM renditions
WHERE storage_key IN (SELECT json_array_elements_text(CAST(:paths AS json)));

-- name: maintenance_renditions_of_generations(ids)
-- The rendition files of these generations (a JSON array of ids), before retention deletes them.
SELECT generation_id, storage_key, file_size_bytes, checksum
FROM renditions
WHERE generation_id IN (SELECT json_array_elements_text(CAST(:ids AS json)));

-- name: maintenance_stored_generations_by_keys(storage_url, keys)
-- The generations that record one of these keys (a JSON array) in the store at `storage_url`.
SELECT id, status, file_path, file_size_bytes, checksum
FROM generations
WHERE file_path IN (SELECT json_array_elements_text(CAST(:keys AS json))) AND storage_url = :storage_url;

-- name: maintenance_stored_renditions_by_keys(storage_url, keys)
-- The renditions stored at one of these keys (a JSON array) whose generation's store is `storage_url`.
SELECT r.id, r.generation_id, r.storage_key, r.file_size_bytes, r.checksum, g.status
FROM renditions AS r
JOIN generations AS g ON g.id = r.generation_id
WHERE r.storage_key IN (SELECT json_array_elements_text(CAST(:keys AS json)))
  AND g.storage_url = :storage_url;

-- name: maintenance_files_to_copy(target_url, after_id, limit)
-- Completed generations with a file not recorded in the store at `target_url` (copy_files), in id order
-- (keyset paging over the primary key). `peaks`: the recorded waveform peaks file (metadata's "peaks" as
-- JSON text), NULL when none.
SELECT id, file_path, file_size_bytes, storage_url, checksum,
       CAST(CAST(replace(metadata, E'\\u0000', E'\\ufffd') AS jsonb) -> 'peaks' AS TEXT) AS peaks
FROM generations
WHERE status = 'completed' AND id > :after_id AND file_path IS NOT NULL
  AND (storage_url IS NULL OR storage_url <> :target_url)
ORDER BY id
LIMIT :limit;

-- name: maintenance_relocate_file(id, old_url, new_url, file_path, checksum)!
-- Point a completed generation at its copy in another store (copy_files), only if it is still as read:
-- completed, the same key, in the store it was copied from. Its renditions follow (they live in its store).
-- A row another transaction holds (another host recording a rendition or peaks of it: the row stays locked
-- while the file is put) is skipped, counted as changed (FOR UPDATE SKIP LOCKED): waiting for it failed the
-- whole copy with DatabaseBusy after lock_timeout.
UPDATE generations
SET storage_url = :new_url, storage_key = :file_path, checksum = :checksum
WHERE id IN (
        SELECT id FROM generations
        WHERE id = :id AND status = 'completed' AND file_path = :file_path
          AND storage_url IS NOT DISTINCT FROM CAST(:old_url AS TEXT)
        FOR UPDATE SKIP LOCKED
    )
  AND status = 'completed' AND file_path = :file_path
  AND storage_url IS NOT DISTINCT FROM CAST(:old_url AS TEXT);

-- name: maintenance_stored_files_after(storage_url, after_path, limit)
-- Generations (any status) whose file is in the store at `storage_url`, with keys above `after_path`, in key
-- order (the file_path index, filtered by storage_url).
-- `peaks`: the recorded waveform peaks file (metadata's "peaks" as JSON text), NULL when none.
SELECT id, status, file_path, file_size_bytes, checksum,
       CAST(CAST(replace(metadata, E'\\u0000', E'\\ufffd') AS jsonb) -> 'peaks' AS TEXT) AS peaks
FROM generations
WHERE file_path IS NOT NULL AND file_path > :after_path AND storage_url = :storage_url
ORDER BY file_path
LIMIT :limit;

-- name: maintenance_stored_files_at(storage_url, file_path)
-- Every generation recording exactly this key in the store at `storage_url` (rows sharing one key at the end
-- of a page of maintenance_stored_files_after are read whole with this).
SELECT id, status, file_path, file_size_bytes, checksum,
       CAST(CAST(replace(metadata, E'\\u0000', E'\\ufffd') AS jsonb) -> 'peaks' AS TEXT) AS peaks
FROM generations
WHERE file_path IS NOT NULL AND file_path = :file_path AND storage_url = :storage_url;

-- name: maintenance_delete_generation(id, status)!
-- Delete a generation retention selected, only if its status is still the one read (never a processing
-- one), and only if no other transaction holds its row (FOR UPDATE SKIP LOCKED): another host recording a
-- rendition or peaks of it (the row stays locked while the file is put) keeps it for the next run, counted
-- as changed. Waiting for that lock failed the whole cleanup with DatabaseBusy after lock_timeout.
DELETE FROM generations
WHERE id IN (
        SELECT id FROM generations
        WHERE id = :id AND status = :status AND status <> 'processing'
        FOR UPDATE SKIP LOCKED
    )
  AND status = :status AND status <> 'processing';

-- Reconcile's repairs skip a row another transaction holds (FOR UPDATE SKIP LOCKED) and report it as changed,
-- left for the next run: another host recording a rendition or peaks of a generation keeps its row locked
-- while the file is put, another reconcile deleting a rendition keeps that row. Waiting for such a lock made
-- the whole reconcile fail with DatabaseBusy after lock_timeout (sql/common/ has the portable versions).

-- name: maintenance_mark_dangling_failed(id, file_path, expected_bytes, actual_bytes, reason, now, storage_url)!
-- completed -> failed for a generation whose file is missing or has another size than recorded, only if the
-- row is exactly as reconcile read it, in the store it was read in (copy_files may have moved it since), and
-- no other transaction holds it.
UPDATE generations
SET status = 'failed',
    error_message = :reason,
    file_size_bytes = :actual_bytes,
    completed_at = :now,
    lease_expires_at = NULL
WHERE id IN (
        SELECT id FROM generations
        WHERE id = :id AND status = 'completed' AND file_path = :file_path
          AND file_size_bytes = :expected_bytes AND storage_url IS NOT DISTINCT FROM CAST(:storage_url AS TEXT)
        FOR UPDATE SKIP LOCKED
    )
  AND status = 'completed' AND file_path = :file_path AND file_size_bytes = :expected_bytes
  AND storage_url IS NOT DISTINCT FROM CAST(:storage_url AS TEXT);

-- name: maintenance_delete_rendition(id, storage_key, file_size_bytes, storage_url)!
-- A rendition whose file is missing or has another size: its row goes, only if it is still exactly as read,
-- its generation's files in the store it was read in (copy_files may have moved them since), and no other
-- transaction holds it.
DELETE FROM renditions
WHERE id IN (
        SELECT id FROM renditions
        WHERE id = :id AND storage_key = :storage_key AND file_size_bytes = :file_size_bytes
        FOR UPDATE SKIP LOCKED
    )
  AND storage_key = :storage_key AND file_size_bytes = :file_size_bytes
  AND EXISTS (
        SELECT 1 FROM generations g
        WHERE g.id = renditions.generation_id AND g.storage_url IS NOT DISTINCT FROM CAST(:storage_url AS TEXT)
    );

-- name: maintenance_generation_for_update(id)^
-- One generation by id, locked until the end of the transaction; none when another transaction holds it.
SELECT * FROM generations WHERE id = :id FOR UPDATE SKIP LOCKED;
