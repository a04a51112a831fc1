-- SQLite's own versions of progress queries (sql/postgres/progress.sql has PostgreSQL's, side by side). Its
-- planner, without statistics, prefers the status index's equality to the completed index's range; INDEXED BY
-- names the index that reads only the window's rows.

-- name: count_completed_since(since)^
-- Completions since a moment: a range of the completed index (migration 0009).
SELECT count(*) AS n FROM generations INDEXED BY generations_completed_at
WHERE status = 'completed' AND completed_at >= :since;

-- name: recent_completions(since, cap)^
-- The throughput behind queue_position's ETA, bounded: the newest completions since a moment, at most cap of
-- them (n), and the completion time of the oldest of those (oldest, NULL for none). A backward walk of the
-- completed index from its newest entry, index-only, stopped at cap: its cost does not grow with the
-- service's throughput.
SELECT count(*) AS n, min(completed_at) AS oldest FROM (
    SELECT completed_at FROM generations INDEXED BY generations_completed_at
    WHERE status = 'completed' AND completed_at >= :since
    ORDER BY completed_at DESC
    LIMIT :cap
) AS recent;

-- name: count_lane_before(owner_key, priority, created_at, id, now, cap)^
-- Pending generations of one lane with the same priority, older (then by id), due now: the claim takes them
-- first. A range of the lane index (migration 0008) ending at the job, each entry's row read for its
-- run_after, stopped at cap.
SELECT count(*) AS n FROM (
    SELECT 1 FROM generations
    WHERE coalesce(owner_key, '') = :owner_key AND status = 'pending' AND priority = :priority
      AND (created_at, id) < (:created_at, :id)
      AND (run_after IS NULL OR run_after <= :now)
    LIMIT :cap
) AS ahead;
