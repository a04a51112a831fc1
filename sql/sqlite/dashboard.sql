-- The dashboard's days: generations created per UTC day since a day, from the running totals by day
-- (migration 0005), in their primary key's order. The day is TEXT here, DATE on PostgreSQL.

-- name: dashboard_days(since)
SELECT day, generations FROM generation_day_totals WHERE day >= :since AND generations > 0 ORDER BY day;

-- name: dashboard_search(pattern, glob, status, model_name, low_created_at, low_id, before_created_at, before_id, limit)
-- sql/common/dashboard.sql's search; a text with letters beyond ASCII comes as a GLOB pattern whose letters are
-- classes of both cases ([cC][aA][fF][éÉ]) instead, since SQLite's lower() and LIKE fold ASCII letters only.
SELECT * FROM generations
WHERE created_at >= :low_created_at AND (created_at, id) >= (:low_created_at, :low_id)
  AND (created_at, id) < (:before_created_at, :before_id)
  AND ((:glob IS NULL AND lower(prompt) LIKE :pattern ESCAPE '!') OR prompt GLOB :glob)
  AND (CAST(:status AS TEXT) IS NULL OR status = :status)
  AND (CAST(:model_name AS TEXT) IS NULL OR model_name = :model_name)
ORDER BY created_at DESC, id DESC
LIMIT :limit;
