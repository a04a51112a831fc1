-- The dashboard's days: generations created per UTC day since a day, from the running totals by day
-- (migration 0005), in their primary key's order. The day is TEXT here, DATE on PostgreSQL.

-- name: dashboard_days(since)
SELECT day, generations FROM generation_day_totals WHERE day >= :since AND generations > 0 ORDER BY day;

-- name: dashboard_completions_by_hour(since)^
-- Completions in each of the 24 hours from a moment (h00 is the first hour), whenever their rows were
-- created: the overview's throughput. One range count of the completed index (migration 0009) per hour, each
-- reading only its hour's entries (a GROUP BY would sort them, and one CASE per hour costs 24 tests a row);
-- completed_at is in microseconds here.
SELECT (SELECT count(*) FROM generations INDEXED BY generations_completed_at WHERE status = 'completed'
        AND completed_at >= :since + 0 * 3600000000 AND completed_at < :since + 1 * 3600000000) AS h00,
       (SELECT count(*) FROM generations INDEXED BY generations_completed_at WHERE status = 'completed'
        AND completed_at >= :since + 1 * 3600000000 AND completed_at < :since + 2 * 3600000000) AS h01,
       (SELECT count(*) FROM generations INDEXED BY generations_completed_at WHERE status = 'completed'
        AND completed_at >= :since + 2 * 3600000000 AND completed_at < :since + 3 * 3600000000) AS h02,
       (SELECT count(*) FROM generations INDEXED BY generations_completed_at WHERE status = 'completed'
        AND completed_at >= :since + 3 * 3600000000 AND completed_at < :since + 4 * 3600000000) AS h03,
       (SELECT count(*) FROM generations INDEXED BY generations_completed_at WHERE status = 'completed'
        AND completed_at >= :since + 4 * 3600000000 AND completed_at < :since + 5 * 3600000000) AS h04,
       (SELECT count(*) FROM generations INDEXED BY generations_completed_at WHERE status = 'completed'
        AND completed_at >= :since + 5 * 3600000000 AND completed_at < :since + 6 * 3600000000) AS h05,
       (SELECT count(*) FROM generations INDEXED BY generations_completed_at WHERE status = 'completed'
        AND completed_at >= :since + 6 * 3600000000 AND completed_at < :since + 7 * 3600000000) AS h06,
       (SELECT count(*) FROM generations INDEXED BY generations_completed_at WHERE status = 'completed'
        AND completed_at >= :since + 7 * 3600000000 AND completed_at < :since + 8 * 3600000000) AS h07,
       (SELECT count(*) FROM generations INDEXED BY generations_completed_at WHERE status = 'completed'
        AND completed_at >= :since + 8 * 3600000000 AND completed_at < :since + 9 * 3600000000) AS h08,
       (SELECT count(*) FROM generations INDEXED BY generations_completed_at WHERE status = 'completed'
        AND completed_at >= :since + 9 * 3600000000 AND completed_at < :since + 10 * 3600000000) AS h09,
       (SELECT count(*) FROM generations INDEXED BY generations_completed_at WHERE status = 'completed'
        AND completed_at >= :since + 10 * 3600000000 AND completed_at < :since + 11 * 3600000000) AS h10,
       (SELECT count(*) FROM generations INDEXED BY generations_completed_at WHERE status = 'completed'
        AND completed_at >= :since + 11 * 3600000000 AND completed_at < :since + 12 * 3600000000) AS h11,
       (SELECT count(*) FROM generations INDEXED BY generations_completed_at WHERE status = 'completed'
        AND completed_at >= :since + 12 * 3600000000 AND completed_at < :since + 13 * 3600000000) AS h12,
       (SELECT count(*) FROM generations INDEXED BY generations_completed_at WHERE status = 'completed'
        AND completed_at >= :since + 13 * 3600000000 AND completed_at < :since + 14 * 3600000000) AS h13,
       (SELECT count(*) FROM generations INDEXED BY generations_completed_at WHERE status = 'completed'
        AND completed_at >= :since + 14 * 3600000000 AND completed_at < :since + 15 * 3600000000) AS h14,
       (SELECT count(*) FROM generations INDEXED BY generations_completed_at WHERE status = 'completed'
        AND completed_at >= :since + 15 * 3600000000 AND completed_at < :since + 16 * 3600000000) AS h15,
       (SELECT count(*) FROM generations INDEXED BY generations_completed_at WHERE status = 'completed'
        AND completed_at >= :since + 16 * 3600000000 AND completed_at < :since + 17 * 3600000000) AS h16,
       (SELECT count(*) FROM generations INDEXED BY generations_completed_at WHERE status = 'completed'
        AND completed_at >= :since + 17 * 3600000000 AND completed_at < :since + 18 * 3600000000) AS h17,
       (SELECT count(*) FROM generations INDEXED BY generations_completed_at WHERE status = 'completed'
        AND completed_at >= :since + 18 * 3600000000 AND completed_at < :since + 19 * 3600000000) AS h18,
       (SELECT count(*) FROM generations INDEXED BY generations_completed_at WHERE status = 'completed'
        AND completed_at >= :since + 19 * 3600000000 AND completed_at < :since + 20 * 3600000000) AS h19,
       (SELECT count(*) FROM generations INDEXED BY generations_completed_at WHERE status = 'completed'
        AND completed_at >= :since + 20 * 3600000000 AND completed_at < :since + 21 * 3600000000) AS h20,
       (SELECT count(*) FROM generations INDEXED BY generations_completed_at WHERE status = 'completed'
        AND completed_at >= :since + 21 * 3600000000 AND completed_at < :since + 22 * 3600000000) AS h21,
       (SELECT count(*) FROM generations INDEXED BY generations_completed_at WHERE status = 'completed'
        AND completed_at >= :since + 22 * 3600000000 AND completed_at < :since + 23 * 3600000000) AS h22,
       (SELECT count(*) FROM generations INDEXED BY generations_completed_at WHERE status = 'completed'
        AND completed_at >= :since + 23 * 3600000000 AND completed_at < :since + 24 * 3600000000) AS h23;

-- name: dashboard_created_by_hour(since)^
-- Generations created in each of the 24 hours from a moment (h00 is the first hour): one range count of the
-- time index per hour, as dashboard_completions_by_hour; created_at is in microseconds here.
SELECT (SELECT count(*) FROM generations INDEXED BY generations_created_at
        WHERE created_at >= :since + 0 * 3600000000 AND created_at < :since + 1 * 3600000000) AS h00,
       (SELECT count(*) FROM generations INDEXED BY generations_created_at
        WHERE created_at >= :since + 1 * 3600000000 AND created_at < :since + 2 * 3600000000) AS h01,
       (SELECT count(*) FROM generations INDEXED BY generations_created_at
        WHERE created_at >= :since + 2 * 3600000000 AND created_at < :since + 3 * 3600000000) AS h02,
       (SELECT count(*) FROM generations INDEXED BY generations_created_at
        WHERE created_at >= :since + 3 * 3600000000 AND created_at < :since + 4 * 3600000000) AS h03,
       (SELECT count(*) FROM generations INDEXED BY generations_created_at
        WHERE created_at >= :since + 4 * 3600000000 AND created_at < :since + 5 * 3600000000) AS h04,
       (SELECT count(*) FROM generations INDEXED BY generations_created_at
        WHERE created_at >= :since + 5 * 3600000000 AND created_at < :since + 6 * 3600000000) AS h05,
       (SELECT count(*) FROM generations INDEXED BY generations_created_at
        WHERE created_at >= :since + 6 * 3600000000 AND created_at < :since + 7 * 3600000000) AS h06,
       (SELECT count(*) FROM generations INDEXED BY generations_created_at
        WHERE created_at >= :since + 7 * 3600000000 AND created_at < :since + 8 * 3600000000) AS h07,
       (SELECT count(*) FROM generations INDEXED BY generations_created_at
        WHERE created_at >= :since + 8 * 3600000000 AND created_at < :since + 9 * 3600000000) AS h08,
       (SELECT count(*) FROM generations INDEXED BY generations_created_at
        WHERE created_at >= :since + 9 * 3600000000 AND created_at < :since + 10 * 3600000000) AS h09,
       (SELECT count(*) FROM generations INDEXED BY generations_created_at
        WHERE created_at >= :since + 10 * 3600000000 AND created_at < :since + 11 * 3600000000) AS h10,
       (SELECT count(*) FROM generations INDEXED BY generations_created_at
        WHERE created_at >= :since + 11 * 3600000000 AND created_at < :since + 12 * 3600000000) AS h11,
       (SELECT count(*) FROM generations INDEXED BY generations_created_at
        WHERE created_at >= :since + 12 * 3600000000 AND created_at < :since + 13 * 3600000000) AS h12,
       (SELECT count(*) FROM generations INDEXED BY generations_created_at
        WHERE created_at >= :since + 13 * 3600000000 AND created_at < :since + 14 * 3600000000) AS h13,
       (SELECT count(*) FROM generations INDEXED BY generations_created_at
        WHERE created_at >= :since + 14 * 3600000000 AND created_at < :since + 15 * 3600000000) AS h14,
       (SELECT count(*) FROM generations INDEXED BY generations_created_at
        WHERE created_at >= :since + 15 * 3600000000 AND created_at < :since + 16 * 3600000000) AS h15,
       (SELECT count(*) FROM generations INDEXED BY generations_created_at
        WHERE created_at >= :since + 16 * 3600000000 AND created_at < :since + 17 * 3600000000) AS h16,
       (SELECT count(*) FROM generations INDEXED BY generations_created_at
        WHERE created_at >= :since + 17 * 3600000000 AND created_at < :since + 18 * 3600000000) AS h17,
       (SELECT count(*) FROM generations INDEXED BY generations_created_at
        WHERE created_at >= :since + 18 * 3600000000 AND created_at < :since + 19 * 3600000000) AS h18,
       (SELECT count(*) FROM generations INDEXED BY generations_created_at
        WHERE created_at >= :since + 19 * 3600000000 AND created_at < :since + 20 * 3600000000) AS h19,
       (SELECT count(*) FROM generations INDEXED BY generations_created_at
        WHERE created_at >= :since + 20 * 3600000000 AND created_at < :since + 21 * 3600000000) AS h20,
       (SELECT count(*) FROM generations INDEXED BY generations_created_at
        WHERE created_at >= :since + 21 * 3600000000 AND created_at < :since + 22 * 3600000000) AS h21,
       (SELECT count(*) FROM generations INDEXED BY generations_created_at
        WHERE created_at >= :since + 22 * 3600000000 AND created_at < :since + 23 * 3600000000) AS h22,
       (SELECT count(*) FROM generations INDEXED BY generations_created_at
        WHERE created_at >= :since + 23 * 3600000000 AND created_at < :since + 24 * 3600000000) AS h23;

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

-- name: dashboard_recent_failures(limit)
-- The newest failures by when they failed (a failed row's completed_at), whenever their rows were created:
-- the overview's recent failures, read from the failed rows' index (migration 0024).
SELECT * FROM generations INDEXED BY generations_failed_at
WHERE status = 'failed'
ORDER BY completed_at DESC, id DESC
LIMIT :limit;

-- name: dashboard_failed_by_hour(since, after_id, hour0)^
-- The overview's failures in each of the 24 hours from :hour0 (h00 is the first hour): of the rows of the
-- metrics' window (from (:since, :after_id) on by (created_at, id): metrics_window_edge), the failed ones by
-- when they failed (completed_at), counted in the database (one range of the time index, one row: a GROUP BY
-- was sorted on PostgreSQL) rather than from the rows read back. completed_at is in microseconds here.
SELECT count(CASE WHEN completed_at >= :hour0 + 0 * 3600000000 AND completed_at < :hour0 + 1 * 3600000000 THEN 1 END) AS h00,
       count(CASE WHEN completed_at >= :hour0 + 1 * 3600000000 AND completed_at < :hour0 + 2 * 3600000000 THEN 1 END) AS h01,
       count(CASE WHEN completed_at >= :hour0 + 2 * 3600000000 AND completed_at < :hour0 + 3 * 3600000000 THEN 1 END) AS h02,
       count(CASE WHEN completed_at >= :hour0 + 3 * 3600000000 AND completed_at < :hour0 + 4 * 3600000000 THEN 1 END) AS h03,
       count(CASE WHEN completed_at >= :hour0 + 4 * 3600000000 AND completed_at < :hour0 + 5 * 3600000000 THEN 1 END) AS h04,
       count(CASE WHEN completed_at >= :hour0 + 5 * 3600000000 AND completed_at < :hour0 + 6 * 3600000000 THEN 1 END) AS h05,
       count(CASE WHEN completed_at >= :hour0 + 6 * 3600000000 AND completed_at < :hour0 + 7 * 3600000000 THEN 1 END) AS h06,
       count(CASE WHEN completed_at >= :hour0 + 7 * 3600000000 AND completed_at < :hour0 + 8 * 3600000000 THEN 1 END) AS h07,
       count(CASE WHEN completed_at >= :hour0 + 8 * 3600000000 AND completed_at < :hour0 + 9 * 3600000000 THEN 1 END) AS h08,
       count(CASE WHEN completed_at >= :hour0 + 9 * 3600000000 AND completed_at < :hour0 + 10 * 3600000000 THEN 1 END) AS h09,
       count(CASE WHEN completed_at >= :hour0 + 10 * 3600000000 AND completed_at < :hour0 + 11 * 3600000000 THEN 1 END) AS h10,
       count(CASE WHEN completed_at >= :hour0 + 11 * 3600000000 AND completed_at < :hour0 + 12 * 3600000000 THEN 1 END) AS h11,
       count(CASE WHEN completed_at >= :hour0 + 12 * 3600000000 AND completed_at < :hour0 + 13 * 3600000000 THEN 1 END) AS h12,
       count(CASE WHEN completed_at >= :hour0 + 13 * 3600000000 AND completed_at < :hour0 + 14 * 3600000000 THEN 1 END) AS h13,
       count(CASE WHEN completed_at >= :hour0 + 14 * 3600000000 AND completed_at < :hour0 + 15 * 3600000000 THEN 1 END) AS h14,
       count(CASE WHEN completed_at >= :hour0 + 15 * 3600000000 AND completed_at < :hour0 + 16 * 3600000000 THEN 1 END) AS h15,
       count(CASE WHEN completed_at >= :hour0 + 16 * 3600000000 AND completed_at < :hour0 + 17 * 3600000000 THEN 1 END) AS h16,
       count(CASE WHEN completed_at >= :hour0 + 17 * 3600000000 AND completed_at < :hour0 + 18 * 3600000000 THEN 1 END) AS h17,
       count(CASE WHEN completed_at >= :hour0 + 18 * 3600000000 AND completed_at < :hour0 + 19 * 3600000000 THEN 1 END) AS h18,
       count(CASE WHEN completed_at >= :hour0 + 19 * 3600000000 AND completed_at < :hour0 + 20 * 3600000000 THEN 1 END) AS h19,
       count(CASE WHEN completed_at >= :hour0 + 20 * 3600000000 AND completed_at < :hour0 + 21 * 3600000000 THEN 1 END) AS h20,
       count(CASE WHEN completed_at >= :hour0 + 21 * 3600000000 AND completed_at < :hour0 + 22 * 3600000000 THEN 1 END) AS h21,
       count(CASE WHEN completed_at >= :hour0 + 22 * 3600000000 AND completed_at < :hour0 + 23 * 3600000000 THEN 1 END) AS h22,
       count(CASE WHEN completed_at >= :hour0 + 23 * 3600000000 AND completed_at < :hour0 + 24 * 3600000000 THEN 1 END) AS h23
FROM generations
WHERE created_at >= :since AND (created_at, id) >= (:since, :after_id)
      AND status = 'failed' AND completed_at >= :hour0;
