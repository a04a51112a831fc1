-- The figures of the newest completed generations (see sql/sqlite/metrics.sql); metadata is JSON text, read
-- as jsonb, and a figure that is not a JSON number is NULL. jsonb (and json's operators) refuse a \u0000 in
-- a string, which rows of the first versions may hold: it is read as \ufffd (a figure is a number, never
-- such a string), so one such row does not fail the query.

-- name: metrics_recent_completed(limit)
SELECT generation_time_seconds AS generation_seconds,
       CAST(extract(epoch FROM completed_at - started_at) AS double precision)
           - coalesce(generation_time_seconds, 0) AS export_seconds,
       CASE WHEN jsonb_typeof(CAST(replace(metadata, E'\\u0000', E'\\ufffd') AS jsonb) -> 'loudness_lufs') = 'number'
            THEN CAST(CAST(replace(metadata, E'\\u0000', E'\\ufffd') AS jsonb) ->> 'loudness_lufs' AS double precision)
       END AS loudness_lufs,
       CASE WHEN jsonb_typeof(CAST(replace(metadata, E'\\u0000', E'\\ufffd') AS jsonb) -> 'true_peak_dbtp') = 'number'
            THEN CAST(CAST(replace(metadata, E'\\u0000', E'\\ufffd') AS jsonb) ->> 'true_peak_dbtp' AS double precision)
       END AS true_peak_dbtp
FROM generations
WHERE status = 'completed'
ORDER BY created_at DESC, id DESC
LIMIT :limit;

-- name: metrics_pending_by_priority(limit)^
-- The queue by priority class (above 0, 0, below 0), of at most limit pending rows: the first ones of the
-- queue's lane index (migration 0008: by owner key, then priority), as on SQLite. Without the order the
-- planner picked the index, so the rows counted past the limit depended on it (the time index: the oldest).
SELECT CAST(coalesce(sum(CASE WHEN priority > 0 THEN 1 ELSE 0 END), 0) AS BIGINT) AS high,
       CAST(coalesce(sum(CASE WHEN priority = 0 THEN 1 ELSE 0 END), 0) AS BIGINT) AS normal,
       CAST(coalesce(sum(CASE WHEN priority < 0 THEN 1 ELSE 0 END), 0) AS BIGINT) AS low,
       count(*) AS counted
FROM (
    SELECT priority FROM generations WHERE status = 'pending'
    ORDER BY coalesce(owner_key, ''), priority DESC, created_at, id
    LIMIT :limit
) AS queue;

-- name: metrics_window(since, after_id, lease_expired)
-- The metrics' window counted in the database: the rows from (:since, :after_id) on by (created_at, id)
-- (the window's edge: metrics_window_edge), per status how many, their attempts (claims), their attempts past
-- the first (retries) and how many have a last error that starts with :lease_expired (a lease's expiry); not
-- one row's prompt or message goes to the caller. One range of the time index; no row when the window is
-- empty. SQLite's planner is told its index (sql/sqlite/metrics.sql).
SELECT status, count(*) AS generations, CAST(sum(attempts) AS BIGINT) AS claims,
       CAST(sum(CASE WHEN attempts > 1 THEN attempts - 1 ELSE 0 END) AS BIGINT) AS retries,
       CAST(sum(CASE WHEN substr(error_message, 1, length(CAST(:lease_expired AS TEXT))) = :lease_expired
                     THEN 1 ELSE 0 END) AS BIGINT) AS lease_expiries
FROM generations
WHERE created_at >= :since AND (created_at, id) >= (:since, :after_id)
GROUP BY status;
