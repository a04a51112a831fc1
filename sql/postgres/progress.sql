-- PostgreSQL's versions of progress queries (sql/sqlite/progress.sql has SQLite's, side by side).

-- name: recent_completions(since, cap)^
-- The throughput behind queue_position's ETA, bounded: the newest completions since a moment, at most cap of
-- them (n), and the completion time of the oldest of those (oldest, NULL for none). A backward index-only
-- walk of the completed index (migration 0009) from its newest entry, stopped at cap: its cost does not grow
-- with the service's throughput.
SELECT count(*) AS n, min(completed_at) AS oldest FROM (
    SELECT completed_at FROM generations
    WHERE status = 'completed' AND completed_at >= :since
    ORDER BY completed_at DESC
    LIMIT :cap
) AS recent;

