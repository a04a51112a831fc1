-- The dashboard's days: generations created per UTC day since a day, from the running totals by day
-- (migration 0005), summed over their shards in the primary key's order.

-- name: dashboard_days(since)
SELECT to_char(t.day, 'YYYY-MM-DD') AS day, CAST(sum(t.generations) AS BIGINT) AS generations
FROM generation_day_totals AS t
WHERE t.day >= CAST(:since AS DATE)
GROUP BY t.day
HAVING sum(t.generations) > 0
ORDER BY t.day;

-- name: dashboard_completions_by_hour(since)^
-- Completions in each of the 24 hours from a moment (h00 is the first hour), whenever their rows were
-- created: the overview's throughput. One range count of the partial index of completed rows (migration
-- 0009) per hour, each reading only its hour's entries, as on SQLite.
SELECT (SELECT count(*) FROM generations WHERE status = 'completed'
        AND completed_at >= CAST(:since AS timestamptz) + interval '0 hours'
        AND completed_at < CAST(:since AS timestamptz) + interval '1 hours') AS h00,
       (SELECT count(*) FROM generations WHERE status = 'completed'
        AND completed_at >= CAST(:since AS timestamptz) + interval '1 hours'
        AND completed_at < CAST(:since AS timestamptz) + interval '2 hours') AS h01,
       (SELECT count(*) FROM generations WHERE status = 'completed'
        AND completed_at >= CAST(:since AS timestamptz) + interval '2 hours'
        AND completed_at < CAST(:since AS timestamptz) + interval '3 hours') AS h02,
       (SELECT count(*) FROM generations WHERE status = 'completed'
        AND completed_at >= CAST(:since AS timestamptz) + interval '3 hours'
        AND completed_at < CAST(:since AS timestamptz) + interval '4 hours') AS h03,
       (SELECT count(*) FROM generations WHERE status = 'completed'
        AND completed_at >= CAST(:since AS timestamptz) + interval '4 hours'
        AND completed_at < CAST(:since AS timestamptz) + interval '5 hours') AS h04,
       (SELECT count(*) FROM generations WHERE status = 'completed'
        AND completed_at >= CAST(:since AS timestamptz) + interval '5 hours'
        AND completed_at < CAST(:since AS timestamptz) + interval '6 hours') AS h05,
       (SELECT count(*) FROM generations WHERE status = 'completed'
        AND completed_at >= CAST(:since AS timestamptz) + interval '6 hours'
        AND completed_at < CAST(:since AS timestamptz) + interval '7 hours') AS h06,
       (SELECT count(*) FROM generations WHERE status = 'completed'
        AND completed_at >= CAST(:since AS timestamptz) + interval '7 hours'
        AND completed_at < CAST(:since AS timestamptz) + interval '8 hours') AS h07,
       (SELECT count(*) FROM generations WHERE status = 'completed'
        AND completed_at >= CAST(:since AS timestamptz) + interval '8 hours'
        AND completed_at < CAST(:since AS timestamptz) + interval '9 hours') AS h08,
       (SELECT count(*) FROM generations WHERE status = 'completed'
        AND completed_at >= CAST(:since AS timestamptz) + interval '9 hours'
        AND completed_at < CAST(:since AS timestamptz) + interval '10 hours') AS h09,
       (SELECT count(*) FROM generations WHERE status = 'completed'
        AND completed_at >= CAST(:since AS timestamptz) + interval '10 hours'
        AND completed_at < CAST(:since AS timestamptz) + interval '11 hours') AS h10,
       (SELECT count(*) FROM generations WHERE status = 'completed'
        AND completed_at >= CAST(:since AS timestamptz) + interval '11 hours'
        AND completed_at < CAST(:since AS timestamptz) + interval '12 hours') AS h11,
       (SELECT count(*) FROM generations WHERE status = 'completed'
        AND completed_at >= CAST(:since AS timestamptz) + interval '12 hours'
        AND completed_at < CAST(:since AS timestamptz) + interval '13 hours') AS h12,
       (SELECT count(*) FROM generations WHERE status = 'completed'
        AND completed_at >= CAST(:since AS timestamptz) + interval '13 hours'
        AND completed_at < CAST(:since AS timestamptz) + interval '14 hours') AS h13,
       (SELECT count(*) FROM generations WHERE status = 'completed'
        AND completed_at >= CAST(:since AS timestamptz) + interval '14 hours'
        AND completed_at < CAST(:since AS timestamptz) + interval '15 hours') AS h14,
       (SELECT count(*) FROM generations WHERE status = 'completed'
        AND completed_at >= CAST(:since AS timestamptz) + interval '15 hours'
        AND completed_at < CAST(:since AS timestamptz) + interval '16 hours') AS h15,
       (SELECT count(*) FROM generations WHERE status = 'completed'
        AND completed_at >= CAST(:since AS timestamptz) + interval '16 hours'
        AND completed_at < CAST(:since AS timestamptz) + interval '17 hours') AS h16,
       (SELECT count(*) FROM generations WHERE status = 'completed'
        AND completed_at >= CAST(:since AS timestamptz) + interval '17 hours'
        AND completed_at < CAST(:since AS timestamptz) + interval '18 hours') AS h17,
       (SELECT count(*) FROM generations WHERE status = 'completed'
        AND completed_at >= CAST(:since AS timestamptz) + interval '18 hours'
        AND completed_at < CAST(:since AS timestamptz) + interval '19 hours') AS h18,
       (SELECT count(*) FROM generations WHERE status = 'completed'
        AND completed_at >= CAST(:since AS timestamptz) + interval '19 hours'
        AND completed_at < CAST(:since AS timestamptz) + interval '20 hours') AS h19,
       (SELECT count(*) FROM generations WHERE status = 'completed'
        AND completed_at >= CAST(:since AS timestamptz) + interval '20 hours'
        AND completed_at < CAST(:since AS timestamptz) + interval '21 hours') AS h20,
       (SELECT count(*) FROM generations WHERE status = 'completed'
        AND completed_at >= CAST(:since AS timestamptz) + interval '21 hours'
        AND completed_at < CAST(:since AS timestamptz) + interval '22 hours') AS h21,
       (SELECT count(*) FROM generations WHERE status = 'completed'
        AND completed_at >= CAST(:since AS timestamptz) + interval '22 hours'
        AND completed_at < CAST(:since AS timestamptz) + interval '23 hours') AS h22,
       (SELECT count(*) FROM generations WHERE status = 'completed'
        AND completed_at >= CAST(:since AS timestamptz) + interval '23 hours'
        AND completed_at < CAST(:since AS timestamptz) + interval '24 hours') AS h23;

-- name: dashboard_created_by_hour(since)^
-- Generations created in each of the 24 hours from a moment (h00 is the first hour): one range count of the
-- time index per hour, as dashboard_completions_by_hour.
SELECT (SELECT count(*) FROM generations
        WHERE created_at >= CAST(:since AS timestamptz) + interval '0 hours'
        AND created_at < CAST(:since AS timestamptz) + interval '1 hours') AS h00,
       (SELECT count(*) FROM generations
        WHERE created_at >= CAST(:since AS timestamptz) + interval '1 hours'
        AND created_at < CAST(:since AS timestamptz) + interval '2 hours') AS h01,
       (SELECT count(*) FROM generations
        WHERE created_at >= CAST(:since AS timestamptz) + interval '2 hours'
        AND created_at < CAST(:since AS timestamptz) + interval '3 hours') AS h02,
       (SELECT count(*) FROM generations
        WHERE created_at >= CAST(:since AS timestamptz) + interval '3 hours'
        AND created_at < CAST(:since AS timestamptz) + interval '4 hours') AS h03,
       (SELECT count(*) FROM generations
        WHERE created_at >= CAST(:since AS timestamptz) + interval '4 hours'
        AND created_at < CAST(:since AS timestamptz) + interval '5 hours') AS h04,
       (SELECT count(*) FROM generations
        WHERE created_at >= CAST(:since AS timestamptz) + interval '5 hours'
        AND created_at < CAST(:since AS timestamptz) + interval '6 hours') AS h05,
       (SELECT count(*) FROM generations
        WHERE created_at >= CAST(:since AS timestamptz) + interval '6 hours'
        AND created_at < CAST(:since AS timestamptz) + interval '7 hours') AS h06,
       (SELECT count(*) FROM generations
        WHERE created_at >= CAST(:since AS timestamptz) + interval '7 hours'
        AND created_at < CAST(:since AS timestamptz) + interval '8 hours') AS h07,
       (SELECT count(*) FROM generations
        WHERE created_at >= CAST(:since AS timestamptz) + interval '8 hours'
        AND created_at < CAST(:since AS timestamptz) + interval '9 hours') AS h08,
       (SELECT count(*) FROM generations
        WHERE created_at >= CAST(:since AS timestamptz) + interval '9 hours'
        AND created_at < CAST(:since AS timestamptz) + interval '10 hours') AS h09,
       (SELECT count(*) FROM generations
        WHERE created_at >= CAST(:since AS timestamptz) + interval '10 hours'
        AND created_at < CAST(:since AS timestamptz) + interval '11 hours') AS h10,
       (SELECT count(*) FROM generations
        WHERE created_at >= CAST(:since AS timestamptz) + interval '11 hours'
        AND created_at < CAST(:since AS timestamptz) + interval '12 hours') AS h11,
       (SELECT count(*) FROM generations
        WHERE created_at >= CAST(:since AS timestamptz) + interval '12 hours'
        AND created_at < CAST(:since AS timestamptz) + interval '13 hours') AS h12,
       (SELECT count(*) FROM generations
        WHERE created_at >= CAST(:since AS timestamptz) + interval '13 hours'
        AND created_at < CAST(:since AS timestamptz) + interval '14 hours') AS h13,
       (SELECT count(*) FROM generations
        WHERE created_at >= CAST(:since AS timestamptz) + interval '14 hours'
        AND created_at < CAST(:since AS timestamptz) + interval '15 hours') AS h14,
       (SELECT count(*) FROM generations
        WHERE created_at >= CAST(:since AS timestamptz) + interval '15 hours'
        AND created_at < CAST(:since AS timestamptz) + interval '16 hours') AS h15,
       (SELECT count(*) FROM generations
        WHERE created_at >= CAST(:since AS timestamptz) + interval '16 hours'
        AND created_at < CAST(:since AS timestamptz) + interval '17 hours') AS h16,
       (SELECT count(*) FROM generations
        WHERE created_at >= CAST(:since AS timestamptz) + interval '17 hours'
        AND created_at < CAST(:since AS timestamptz) + interval '18 hours') AS h17,
       (SELECT count(*) FROM generations
        WHERE created_at >= CAST(:since AS timestamptz) + interval '18 hours'
        AND created_at < CAST(:since AS timestamptz) + interval '19 hours') AS h18,
       (SELECT count(*) FROM generations
        WHERE created_at >= CAST(:since AS timestamptz) + interval '19 hours'
        AND created_at < CAST(:since AS timestamptz) + interval '20 hours') AS h19,
       (SELECT count(*) FROM generations
        WHERE created_at >= CAST(:since AS timestamptz) + interval '20 hours'
        AND created_at < CAST(:since AS timestamptz) + interval '21 hours') AS h20,
       (SELECT count(*) FROM generations
        WHERE created_at >= CAST(:since AS timestamptz) + interval '21 hours'
        AND created_at < CAST(:since AS timestamptz) + interval '22 hours') AS h21,
       (SELECT count(*) FROM generations
        WHERE created_at >= CAST(:since AS timestamptz) + interval '22 hours'
        AND created_at < CAST(:since AS timestamptz) + interval '23 hours') AS h22,
       (SELECT count(*) FROM generations
        WHERE created_at >= CAST(:since AS timestamptz) + interval '23 hours'
        AND created_at < CAST(:since AS timestamptz) + interval '24 hours') AS h23;

-- name: dashboard_search(pattern, regex, status, model_name, low_created_at, low_id, before_created_at, before_id, limit)
-- Rows of the window [(low_created_at, low_id), cursor) whose prompt matches the lower-case LIKE pattern
-- (escape character !), or for a text beyond ASCII the regular expression whose letters are classes of both
-- cases ([cC][aA][fF][éÉ]): lower() under the collation "C" folds ASCII letters only, as SQLite's does (the
-- server's locale, C.UTF-8 or en_US, lowers the Kelvin sign to k and İ to i); optionally of one status
-- and/or model.
SELECT * FROM generations
WHERE created_at >= :low_created_at AND (created_at, id) >= (:low_created_at, :low_id)
  AND (created_at, id) < (:before_created_at, :before_id)
  AND ((CAST(:regex AS TEXT) IS NULL AND lower(prompt COLLATE "C") LIKE :pattern ESCAPE '!')
       OR prompt ~ CAST(:regex AS TEXT))
  AND (CAST(:status AS TEXT) IS NULL OR status = :status)
  AND (CAST(:model_name AS TEXT) IS NULL OR model_name = :model_name)
ORDER BY created_at DESC, id DESC
LIMIT :limit;

-- name: dashboard_recent_failures(limit)
-- The newest failures by when they failed (a failed row's completed_at), whenever their rows were created:
-- the overview's recent failures, read from the failed rows' index (migration 0024). A failed row without a
-- completed_at (imported so) comes last, as SQLite orders NULL (the lowest): PostgreSQL's DESC puts it first.
SELECT * FROM generations
WHERE status = 'failed'
ORDER BY completed_at DESC NULLS LAST, id DESC
LIMIT :limit;

-- name: dashboard_failed_by_hour(since, after_id, hour0)^
-- The overview's failures in each of the 24 hours from :hour0 (h00 is the first hour): of the rows of the
-- metrics' window (from (:since, :after_id) on by (created_at, id): metrics_window_edge), the failed ones by
-- when they failed (completed_at), counted in the database, as on SQLite: one row (a GROUP BY was sorted
-- here), on the time index, or the failed rows' by status and time or by when they failed (migration 0024).
SELECT count(CASE WHEN completed_at >= CAST(:hour0 AS timestamptz) + interval '0 hours' AND completed_at < CAST(:hour0 AS timestamptz) + interval '1 hours' THEN 1 END) AS h00,
       count(CASE WHEN completed_at >= CAST(:hour0 AS timestamptz) + interval '1 hours' AND completed_at < CAST(:hour0 AS timestamptz) + interval '2 hours' THEN 1 END) AS h01,
       count(CASE WHEN completed_at >= CAST(:hour0 AS timestamptz) + interval '2 hours' AND completed_at < CAST(:hour0 AS timestamptz) + interval '3 hours' THEN 1 END) AS h02,
       count(CASE WHEN completed_at >= CAST(:hour0 AS timestamptz) + interval '3 hours' AND completed_at < CAST(:hour0 AS timestamptz) + interval '4 hours' THEN 1 END) AS h03,
       count(CASE WHEN completed_at >= CAST(:hour0 AS timestamptz) + interval '4 hours' AND completed_at < CAST(:hour0 AS timestamptz) + interval '5 hours' THEN 1 END) AS h04,
       count(CASE WHEN completed_at >= CAST(:hour0 AS timestamptz) + interval '5 hours' AND completed_at < CAST(:hour0 AS timestamptz) + interval '6 hours' THEN 1 END) AS h05,
       count(CASE WHEN completed_at >= CAST(:hour0 AS timestamptz) + interval '6 hours' AND completed_at < CAST(:hour0 AS timestamptz) + interval '7 hours' THEN 1 END) AS h06,
       count(CASE WHEN completed_at >= CAST(:hour0 AS timestamptz) + interval '7 hours' AND completed_at < CAST(:hour0 AS timestamptz) + interval '8 hours' THEN 1 END) AS h07,
       count(CASE WHEN completed_at >= CAST(:hour0 AS timestamptz) + interval '8 hours' AND completed_at < CAST(:hour0 AS timestamptz) + interval '9 hours' THEN 1 END) AS h08,
       count(CASE WHEN completed_at >= CAST(:hour0 AS timestamptz) + interval '9 hours' AND completed_at < CAST(:hour0 AS timestamptz) + interval '10 hours' THEN 1 END) AS h09,
       count(CASE WHEN completed_at >= CAST(:hour0 AS timestamptz) + interval '10 hours' AND completed_at < CAST(:hour0 AS timestamptz) + interval '11 hours' THEN 1 END) AS h10,
       count(CASE WHEN completed_at >= CAST(:hour0 AS timestamptz) + interval '11 hours' AND completed_at < CAST(:hour0 AS timestamptz) + interval '12 hours' THEN 1 END) AS h11,
       count(CASE WHEN completed_at >= CAST(:hour0 AS timestamptz) + interval '12 hours' AND completed_at < CAST(:hour0 AS timestamptz) + interval '13 hours' THEN 1 END) AS h12,
       count(CASE WHEN completed_at >= CAST(:hour0 AS timestamptz) + interval '13 hours' AND completed_at < CAST(:hour0 AS timestamptz) + interval '14 hours' THEN 1 END) AS h13,
       count(CASE WHEN completed_at >= CAST(:hour0 AS timestamptz) + interval '14 hours' AND completed_at < CAST(:hour0 AS timestamptz) + interval '15 hours' THEN 1 END) AS h14,
       count(CASE WHEN completed_at >= CAST(:hour0 AS timestamptz) + interval '15 hours' AND completed_at < CAST(:hour0 AS timestamptz) + interval '16 hours' THEN 1 END) AS h15,
       count(CASE WHEN completed_at >= CAST(:hour0 AS timestamptz) + interval '16 hours' AND completed_at < CAST(:hour0 AS timestamptz) + interval '17 hours' THEN 1 END) AS h16,
       count(CASE WHEN completed_at >= CAST(:hour0 AS timestamptz) + interval '17 hours' AND completed_at < CAST(:hour0 AS timestamptz) + interval '18 hours' THEN 1 END) AS h17,
       count(CASE WHEN completed_at >= CAST(:hour0 AS timestamptz) + interval '18 hours' AND completed_at < CAST(:hour0 AS timestamptz) + interval '19 hours' THEN 1 END) AS h18,
       count(CASE WHEN completed_at >= CAST(:hour0 AS timestamptz) + interval '19 hours' AND completed_at < CAST(:hour0 AS timestamptz) + interval '20 hours' THEN 1 END) AS h19,
       count(CASE WHEN completed_at >= CAST(:hour0 AS timestamptz) + interval '20 hours' AND completed_at < CAST(:hour0 AS timestamptz) + interval '21 hours' THEN 1 END) AS h20,
       count(CASE WHEN completed_at >= CAST(:hour0 AS timestamptz) + interval '21 hours' AND completed_at < CAST(:hour0 AS timestamptz) + interval '22 hours' THEN 1 END) AS h21,
       count(CASE WHEN completed_at >= CAST(:hour0 AS timestamptz) + interval '22 hours' AND completed_at < CAST(:hour0 AS timestamptz) + interval '23 hours' THEN 1 END) AS h22,
       count(CASE WHEN completed_at >= CAST(:hour0 AS timestamptz) + interval '23 hours' AND completed_at < CAST(:hour0 AS timestamptz) + interval '24 hours' THEN 1 END) AS h23
FROM generations
WHERE created_at >= :since AND (created_at, id) >= (:since, :after_id)
      AND status = 'failed' AND completed_at >= :hour0;
