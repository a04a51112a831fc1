-- The dashboard's days: generations created per UTC day since a day, from the running totals by day
-- (migration 0005), in their primary key's order. The day is TEXT here, DATE on PostgreSQL.

-- name: dashboard_days(since)
SELECT day, generations FROM generation_day_totals WHERE day >= :since AND generations > 0 ORDER BY day;

-- name: dashboard_search(pattern, glob, status, model_name, low_created_at, low_id, before_created_at, before_id, limit)
-- Rows of the window [(low_created_at, low_id), cursor) whose prompt matches the lower-case LIKE pattern
-- (escape character !), or for a text beyond ASCII the GLOB pattern whose letters are classes of both cases
-- ([cC][aA][fF][éÉ]): SQLite's lower() and LIKE fold ASCII letters only; optionally of one status and/or model.
SELECT * FROM generations
WHERE created_at >= :low_created_at AND (created_at, id) >= (:low_created_at, :low_id)
  AND (created_at, id) < (:before_created_at, :before_id)
  AND ((:glob IS NULL AND lower(prompt) LIKE :pattern ESCAPE '!') OR prompt GLOB :glob)
  AND (CAST(:status AS TEXT) IS NULL OR status = :status)
  AND (CAST(:model_name AS TEXT) IS NULL OR model_name = :model_name)
ORDER BY created_at DESC, id DESC
LIMIT :limit;
