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

-- name: count_lane_before(owner_key, priority, created_at, id, now, cap)^
-- Pending generations of one lane with the same priority, older (then by id), due now: the claim takes them
-- first. Bounded below by the first of them too (the subquery: one probe of the lane's head at that
-- priority): with the job's upper bound alone, the planner estimated half the rows older than the job to
-- match (pending rows are the newest, which its estimate cannot know) and walked the time index over every
-- older row of any status, 68 ms at 100,000 rows for a job with none ahead (docs/performance.md, session
-- 28). Both bounds give it the range between the lane's head and the job: the lane index's entries, or the
-- rows created in that time; each row read for its run_after, stopped at cap.
SELECT count(*) AS n FROM (
    SELECT 1 FROM generations
    WHERE coalesce(owner_key, '') = :owner_key AND status = 'pending' AND priority = :priority
      AND (created_at, id) >= (
          SELECT h.created_at, h.id FROM generations AS h
          WHERE coalesce(h.owner_key, '') = :owner_key AND h.status = 'pending' AND h.priority = :priority
          ORDER BY coalesce(h.owner_key, ''), h.priority DESC, h.created_at, h.id
          LIMIT 1
      )
      AND (created_at, id) < (:created_at, :id)
      AND (run_after IS NULL OR run_after <= :now)
    LIMIT :cap
) AS ahead;
