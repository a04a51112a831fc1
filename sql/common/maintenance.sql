-- Maintenance: reconcile (database <-> disk), retention cleanup and storage statistics.
-- See docs/maintenance.md. Lookups by lists of ids or paths, day bucketing and the two paging queries (whose
-- index choice SQLite needs told) differ by dialect and live in sql/sqlite/ and sql/postgres/maintenance.sql.
-- Counts and bytes by status, by model and by day come from the trigger-kept totals (no scan of generations).

-- name: maintenance_mark_dangling_failed(id, file_path, expected_bytes, actual_bytes, reason)!
-- Operator repair outside the worker status machine: completed -> failed for a generation whose file is
-- missing or has another size than recorded. Matches only the row exactly as reconcile read it; the row
-- keeps its file_path (what was lost), file_size_bytes becomes what is on disk (NULL when missing).
UPDATE generations
SET status = 'failed',
    error_message = :reason,
    file_size_bytes = :actual_bytes,
    lease_expires_at = NULL
WHERE id = :id AND status = 'completed' AND file_path = :file_path AND file_size_bytes = :expected_bytes;

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
