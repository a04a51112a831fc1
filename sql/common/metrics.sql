-- Metrics and the dashboard's figures (musicstore.metrics): read from the running totals that triggers keep
-- and from bounded walks of an index (the newest rows of a window, the processing rows, the newest completed
-- rows), so that a scrape costs the same at any table size. No query here writes. Timestamps are bound by
-- the connector in the backend's encoding.

-- name: metrics_model_totals()
-- Counts by (model, status) from the running totals by (model, status) (migration 0005), in their primary
-- key's order; keys at zero are left out.
SELECT model_name, status, CAST(sum(generations) AS BIGINT) AS generations
FROM generation_model_totals
GROUP BY model_name, status
HAVING sum(generations) > 0
ORDER BY model_name, status;

-- name: metrics_oldest_pending()^
-- The creation time of the queue's head: the first entry of the pending rows in the queue's index.
SELECT min(created_at) AS oldest FROM generations WHERE status = 'pending';

-- name: metrics_longest_ready(now, limit)^
-- Since when the longest-waiting ready job has been ready (the later of its creation and its run_after; NULL
-- when none is ready: each waits for its run_after), of the queue's first `limit` pending rows by creation,
-- on the queue's time-ordered index (queue_depth's ready_since, without its pass over every pending row). A
-- row past the limit was created after every row read, so it can only be ready since later than the first
-- ready row among them: the figure is exact unless nearly all of those rows wait for a later run_after.
SELECT min(CASE WHEN run_after IS NULL OR run_after <= created_at THEN created_at
                WHEN run_after <= :now THEN run_after END) AS ready_since
FROM (
    SELECT created_at, run_after FROM generations WHERE status = 'pending' ORDER BY created_at, id LIMIT :limit
) AS head;

-- name: metrics_processing(limit)
-- The rows being processed (one per claim in flight, a few): their worker, lease, priority and the progress
-- their worker last reported (migrations 0008, 0009). In no order (the caller sorts this small set).
SELECT id, model_name, worker_id, attempts, started_at, lease_expires_at, priority, progress, stage
FROM generations
WHERE status = 'processing'
LIMIT :limit;

-- name: metrics_window_edge(since, offset)
-- The window's edge (metrics_window): the created_at of the row at `offset` among the rows created since
-- :since, newest first, and of the one after it, if any: none when the window holds no more than `offset`
-- rows, two when it holds more than `offset + 1` (it is truncated). The time index alone (index-only): which
-- rows of one created_at are in is settled by metrics_window_ties and metrics_window_edge_id.
SELECT created_at FROM generations
WHERE created_at >= :since
ORDER BY created_at DESC
LIMIT 2 OFFSET :offset;

-- name: metrics_window_ties(edge)^
-- How many rows were created after the edge's created_at, and how many at it: the time index alone.
SELECT count(CASE WHEN created_at > :edge THEN 1 END) AS newer,
       count(CASE WHEN created_at = :edge THEN 1 END) AS ties
FROM generations
WHERE created_at >= :edge;

-- name: metrics_window_edge_id(edge, offset)^
-- The id of the row at `offset` among the rows created at the edge's created_at, by id (lowest first): the
-- window's last row, when its newest rows end among rows of one created_at (metrics_recent takes the highest
-- ids first). Only that created_at's rows are read, sorted by id.
SELECT id FROM generations
WHERE created_at >= :edge
ORDER BY created_at, id
LIMIT 1 OFFSET :offset;

-- name: metrics_recent(since, limit)
-- The newest rows created since a time (at most limit), newest first: what became of them. Rows of one
-- created_at are taken by id (the highest first), so that a cut window counts the same rows every time.
SELECT prompt, status, attempts, error_message, created_at, started_at, completed_at
FROM generations
WHERE created_at >= :since
ORDER BY created_at DESC, id DESC
LIMIT :limit;
