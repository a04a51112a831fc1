-- Progress of running generations (migration 0009), a pending generation's place in the queue and the
-- throughput its ETA is computed from.

-- name: report_progress(id, worker_id, progress, stage, now, lease_expires_at)!
-- The progress of a generation the worker still owns (a cancelled one, or one requeued, matches no row); its
-- lease extended to lease_expires_at when one is given (NULL: the lease is kept), as a heartbeat does, unless it
-- already runs longer.
UPDATE generations
SET progress = :progress, stage = :stage, progress_at = :now,
    lease_expires_at = CASE
        WHEN coalesce(lease_expires_at, :now) < :lease_expires_at THEN :lease_expires_at
        ELSE lease_expires_at
    END
WHERE id = :id AND status = 'processing' AND worker_id = :worker_id;

-- name: count_lane_higher(owner_key, priority, now, cap)^
-- Pending generations of one lane (owner key, '' for none) with a higher priority, due now (run_after passed):
-- the claim takes them first. A range of the lane index (migration 0008), each entry's row read for its
-- run_after, stopped at cap. Its upper end (32767, the highest priority) changes no result: a range closed at
-- both ends is what PostgreSQL's generic plan (kept for a statement psycopg prepared, for any parameters)
-- takes to be narrow; open, it took a third of the rows and scanned the table (session 28).
SELECT count(*) AS n FROM (
    SELECT 1 FROM generations
    WHERE coalesce(owner_key, '') = :owner_key AND status = 'pending'
      AND priority > :priority AND priority <= 32767
      AND (run_after IS NULL OR run_after <= :now)
    LIMIT :cap
) AS ahead;

-- name: count_completed_since(since)^
-- Completions since a moment: a range of the completed index (migration 0009).
SELECT count(*) AS n FROM generations WHERE status = 'completed' AND completed_at >= :since;
