-- Maintenance: reconcile (database <-> disk), retention cleanup and storage statistics.
-- See docs/maintenance.md. Lookups by lists of ids or paths, day bucketing and the two paging queries (whose
-- index choice SQLite needs told) differ by dialect and live in sql/sqlite/ and sql/postgres/maintenance.sql.
-- Counts and bytes by status, by model and by day come from the trigger-kept totals (no scan of generations).

-- name: maintenance_mark_dangling_failed(id, file_path, expected_bytes, actual_bytes, reason, now, storage_url)!
-- Operator repair outside the worker status machine: completed -> failed for a generation whose file is
-- missing or has another size than recorded. Matches only the row exactly as reconcile read it, in the store
-- it was read in (copy_files may have moved it since, its files whole in the other store); the row
-- keeps its file_path (what was lost), file_size_bytes becomes what is on disk (NULL when missing),
-- completed_at when it failed (now), as any failure's.
UPDATE generations
SET status = 'failed',
    error_message = :reason,
    file_size_bytes = :actual_bytes,
    completed_at = :now,
    lease_expires_at = NULL
WHERE id = :id AND status = 'completed' AND file_path = :file_path AND file_size_bytes = :expected_bytes
  AND (storage_url = CAST(:storage_url AS TEXT) OR (storage_url IS NULL AND CAST(:storage_url AS TEXT) IS NULL));

-- name: maintenance_generation_for_update(id)^
-- One generation by id, for reconcile's repair of its row in the same transaction. PostgreSQL's version
-- (sql/postgres/maintenance.sql) locks it, or finds none when another transaction holds it.
SELECT * FROM generations WHERE id = :id;

-- name: maintenance_delete_generation(id, status)!
-- Delete a generation retention selected, only if its status is still the one read (never a processing one).
DELETE FROM generations WHERE id = :id AND status = :status AND status <> 'processing';

-- name: maintenance_storage_by_status()
-- From the running totals (summed over PostgreSQL's shards): constant time at any size.
SELECT status, CAST(sum(generations) AS BIGINT) AS generations, CAST(sum(file_bytes) AS BIGINT) AS file_bytes
FROM generation_totals
GROUP BY status
ORDER BY status;

-- name: maintenance_storage_by_model()
-- From the running totals by (model, status) (migration 0005), in their primary key's order; models whose
-- generations are all gone (rows at zero) are left out.
SELECT model_name,
       CAST(sum(generations) AS BIGINT) AS generations,
       CAST(sum(file_bytes) AS BIGINT) AS file_bytes
FROM generation_model_totals
GROUP BY model_name
HAVING sum(generations) > 0
ORDER BY model_name;

-- name: maintenance_storage_span()^
-- Count and bytes from the running totals; oldest and newest from the ends of the created_at index.
SELECT (SELECT CAST(sum(generations) AS BIGINT) FROM generation_totals) AS generations,
       (SELECT CAST(sum(file_bytes) AS BIGINT) FROM generation_totals) AS file_bytes,
       (SELECT min(created_at) FROM generations) AS oldest,
       (SELECT max(created_at) FROM generations) AS newest;

-- Object stores (s3://, migration 0006): the rows whose files live under one storage URL, walked in key
-- order (the order of the listing they are merged with: musicstore.maintenance.bucket). For such rows
-- file_path is the key (recording sets both), so the file_path index serves the walk.

-- maintenance_stored_files_after and maintenance_stored_files_at read the recorded peaks file too (JSON
-- extraction differs by dialect): sql/sqlite/ and sql/postgres/maintenance.sql.

-- name: maintenance_stored_renditions_after(storage_url, after_key, limit)
-- Renditions of generations whose files are in the store at `storage_url` (a rendition lives in its
-- generation's store), keys above `after_key`, in key order (the renditions' storage_key index).
SELECT r.id, r.generation_id, r.storage_key, r.file_size_bytes, r.checksum, g.status
FROM renditions AS r
JOIN generations AS g ON g.id = r.generation_id
WHERE r.storage_key > :after_key AND g.storage_url = :storage_url
ORDER BY r.storage_key
LIMIT :limit;

-- name: maintenance_local_renditions_after(after_id, limit)
-- Renditions of generations whose files are on a local root (storage_url NULL or file:), in id order
-- (reconcile's keyset paging over the renditions' primary key); those in an object store are left out.
-- `storage_url`: their generation's folder (NULL: before 0006); reconcile judges only its root's.
SELECT r.id, r.generation_id, r.storage_key, r.file_size_bytes, r.checksum, g.storage_url
FROM renditions AS r
JOIN generations AS g ON g.id = r.generation_id
WHERE r.id > :after_id AND (g.storage_url IS NULL OR substr(g.storage_url, 1, 5) = 'file:')
ORDER BY r.id
LIMIT :limit;

-- name: maintenance_idle_lanes(before)^
-- The owner keys' lanes with no job pending (no head) or processing, last served before ``before``: rows the
-- lanes' triggers make for every key ever used and never delete (cleanup's prune; the key's next job makes
-- its lane again, as never served). Reads the whole table (a row a key).
SELECT count(*) AS n FROM owner_lanes WHERE running = 0 AND head_id IS NULL AND served_at < :before;

-- name: maintenance_delete_idle_lanes(before)!
-- Those lanes deleted. A lane an enqueue or a claim changed meanwhile is kept: PostgreSQL reads each row
-- again under its lock (READ COMMITTED), SQLite runs one writer at a time.
DELETE FROM owner_lanes WHERE running = 0 AND head_id IS NULL AND served_at < :before;
