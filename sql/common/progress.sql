-- Progress of running generations (migration 0009), a pending generation's place in the queue and the
-- throughput its ETA is computed from.

-- name: report_progress(id, worker_id, progress, stage, now)!
-- The progress of a generation the worker still owns (a cancelled one, or one requeued, matches no row).
UPDATE generations
SET progress = :progress, stage = :stage, progress_at = :now
WHERE id = :id AND status = 'processing' AND worker_id = :worker_id;

-- name: count_pending_ahead(created_at, id, cap)^
-- How many pending generations the claim takes before this one (its order: created_at, then id), counted in
-- the pending index and stopped at cap.
SELECT count(*) AS n FROM (
    SELECT 1 FROM generations
    WHERE status = 'pending' AND (created_at, id) < (:created_at, :id)
    LIMIT :cap
) AS ahead;

-- name: count_completed_since(since)^
-- Completions since a moment: a range of the completed index (migration 0009).
SELECT count(*) AS n FROM generations WHERE status = 'completed' AND completed_at >= :since;
