-- The figures of the newest completed generations, for the distributions of musicstore.metrics: the model's
-- time, the rest of the claim (start to completion, less the model's time: export and storage), and the
-- loudness and true peak the export recorded in metadata (NULL where absent or not a JSON number: ->> alone
-- reads true as 1, where PostgreSQL's jsonb_typeof leaves it out). JSON and time arithmetic differ by dialect
-- (sql/postgres/metrics.sql).

-- name: metrics_recent_completed(limit)
SELECT generation_time_seconds AS generation_seconds,
       (completed_at - started_at) / 1e6 - coalesce(generation_time_seconds, 0) AS export_seconds,
       CASE WHEN json_type(metadata, '$.loudness_lufs') IN ('integer', 'real')
            THEN metadata ->> 'loudness_lufs' END AS loudness_lufs,
       CASE WHEN json_type(metadata, '$.true_peak_dbtp') IN ('integer', 'real')
            THEN metadata ->> 'true_peak_dbtp' END AS true_peak_dbtp
FROM generations
WHERE status = 'completed'
ORDER BY created_at DESC, id DESC
LIMIT :limit;

-- name: metrics_pending_by_priority(limit)^
-- The queue by priority class (above 0, 0, below 0), of at most limit pending rows: a walk of the queue's
-- lane index (migration 0008), which holds the priority (SQLite's planner picks the time index unless told).
SELECT CAST(coalesce(sum(CASE WHEN priority > 0 THEN 1 ELSE 0 END), 0) AS BIGINT) AS high,
       CAST(coalesce(sum(CASE WHEN priority = 0 THEN 1 ELSE 0 END), 0) AS BIGINT) AS normal,
       CAST(coalesce(sum(CASE WHEN priority < 0 THEN 1 ELSE 0 END), 0) AS BIGINT) AS low,
       count(*) AS counted
FROM (
    SELECT priority FROM generations INDEXED BY generations_lane_queue WHERE status = 'pending' LIMIT :limit
) AS queue;

-- name: metrics_window(since, after_id, lease_expired)
-- The metrics' window counted in the database: the rows from (:since, :after_id) on by (created_at, id)
-- (the window's edge: metrics_window_edge), per status how many, their attempts (claims), their attempts past
-- the first (retries) and how many have a last error that starts with :lease_expired (a lease's expiry); not
-- one row's prompt or message goes to the caller. One range of the time index (named: else the planner
-- walks the whole status index to group without a sort); no row when the window is empty.
SELECT status, count(*) AS generations, CAST(sum(attempts) AS BIGINT) AS claims,
       CAST(sum(CASE WHEN attempts > 1 THEN attempts - 1 ELSE 0 END) AS BIGINT) AS retries,
       CAST(sum(CASE WHEN substr(error_message, 1, length(CAST(:lease_expired AS TEXT))) = :lease_expired
                     THEN 1 ELSE 0 END) AS BIGINT) AS lease_expiries
FROM generations INDEXED BY generations_created_at
WHERE created_at >= :since AND (created_at, id) >= (:since, :after_id)
GROUP BY status;
