-- SQLite's own version of a progress query: its planner, without statistics, prefers the status index's
-- equality to the completed index's range; INDEXED BY names the index that reads only the window's rows.

-- name: count_completed_since(since)^
-- Completions since a moment: a range of the completed index (migration 0009).
SELECT count(*) AS n FROM generations INDEXED BY generations_completed_at
WHERE status = 'completed' AND completed_at >= :since;
