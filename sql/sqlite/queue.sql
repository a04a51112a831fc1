-- Retries put back with a backoff (migration 0008): run_after = now + min(cap, base * 2^(attempts - 1)),
-- less a random part of up to `jitter` of it (SQLite's random(), per row); base 0: at once (run_after NULL).
-- The delay in microseconds is rounded to the nearest, ties to even (the subquery draws it once), as
-- PostgreSQL's cast to BIGINT and Python's timedelta round it: it truncated, so a delay of 1.7 us made a
-- run_after 1 us earlier than PostgreSQL's.

-- name: retry_generation(id, worker_id, error_message, max_attempts, now, base_seconds, cap_seconds, jitter)!
-- processing -> pending, while attempts remain, claimable again after its backoff (no progress: the next
-- attempt's worker reports its own). Its started_at stays, the last claim's start: the lane without an owner
-- key was served by that claim (its latest started_at is when it was last served; cleared, the lane took
-- turn after turn while a keyed lane waited), as a keyed lane's owner_lanes.served_at keeps it.
UPDATE generations
SET status = 'pending',
    error_message = :error_message,
    worker_id = NULL,
    lease_expires_at = NULL,
    progress = NULL,
    stage = NULL,
    progress_at = NULL,
    run_after = CASE WHEN :base_seconds > 0 THEN :now + (
        SELECT CAST(d AS INTEGER) + (d - CAST(d AS INTEGER) > 0.5
                                     OR (d - CAST(d AS INTEGER) = 0.5 AND CAST(d AS INTEGER) % 2 = 1))
        FROM (SELECT min(:cap_seconds, :base_seconds * (1 << min(max(attempts - 1, 0), 40)))
                     * (1.0 - :jitter * (abs(random() % 1000000) / 1000000.0)) * 1000000 AS d)
    ) END
WHERE id = :id AND status = 'processing' AND attempts < :max_attempts
  AND (CAST(:worker_id AS TEXT) IS NULL OR worker_id = :worker_id);

-- name: requeue_expired(now, max_attempts, base_seconds, cap_seconds, jitter)
-- processing -> pending for every expired lease with attempts left, each after its backoff (no progress; its
-- started_at stays, as a retry's).
UPDATE generations
SET status = 'pending',
    error_message = 'lease expired',
    worker_id = NULL,
    lease_expires_at = NULL,
    progress = NULL,
    stage = NULL,
    progress_at = NULL,
    run_after = CASE WHEN :base_seconds > 0 THEN :now + (
        SELECT CAST(d AS INTEGER) + (d - CAST(d AS INTEGER) > 0.5
                                     OR (d - CAST(d AS INTEGER) = 0.5 AND CAST(d AS INTEGER) % 2 = 1))
        FROM (SELECT min(:cap_seconds, :base_seconds * (1 << min(max(attempts - 1, 0), 40)))
                     * (1.0 - :jitter * (abs(random() % 1000000) / 1000000.0)) * 1000000 AS d)
    ) END
WHERE status = 'processing' AND lease_expires_at <= :now AND attempts < :max_attempts
RETURNING id;

-- name: queue_heads(now, default_limit, limit)
-- The lanes a claim may take from, best first: the head of each lane with a ready job (run_after passed) and
-- room under its limit, ordered by the head's priority (higher first), then the lane's running jobs (fewer
-- first: fair across keys), then when the lane was last served (longest ago first: round robin among
-- equals; migration 0015), then the head's age and id. The distinct lanes are found by a loose index scan
-- (one probe of generations_lane_queue per lane), so the cost grows with the number of lanes with pending
-- jobs, never with the jobs; only the heads, one per lane, are sorted. SQLite's own version: a keyed lane's
-- running jobs are its owner_lanes row's count (0012), those without a key the entries of
-- generations_unkeyed_running (0013).
WITH RECURSIVE lanes (owner_key) AS (
    SELECT (
        SELECT coalesce(owner_key, '') FROM generations INDEXED BY generations_lane_queue
        WHERE status = 'pending'
        ORDER BY coalesce(owner_key, '')
        LIMIT 1
    )
    UNION ALL
    SELECT (
        SELECT coalesce(g.owner_key, '') FROM generations AS g INDEXED BY generations_lane_queue
        WHERE g.status = 'pending' AND coalesce(g.owner_key, '') > lanes.owner_key
        ORDER BY coalesce(g.owner_key, '')
        LIMIT 1
    )
    FROM lanes
    WHERE lanes.owner_key IS NOT NULL
),
heads AS MATERIALIZED (
    SELECT lanes.owner_key,
           (
               SELECT g.id FROM generations AS g
               WHERE coalesce(g.owner_key, '') = lanes.owner_key AND g.status = 'pending'
                 AND (g.run_after IS NULL OR g.run_after <= :now)
               ORDER BY g.priority DESC, g.created_at, g.id
               LIMIT 1
           ) AS head_id,
           CASE WHEN lanes.owner_key = '' THEN (
               SELECT count(*) FROM generations AS p
               WHERE p.owner_key IS NULL AND p.status = 'processing'
           ) ELSE (
               SELECT coalesce(max(r.running), 0) FROM owner_lanes AS r WHERE r.owner_key = lanes.owner_key
           ) END AS running,
           CASE WHEN lanes.owner_key = '' THEN coalesce((
               SELECT max(s.started_at) FROM generations AS s
               WHERE s.owner_key IS NULL AND s.started_at IS NOT NULL
           ), 0) ELSE (
               SELECT coalesce(max(r.served_at), 0) FROM owner_lanes AS r WHERE r.owner_key = lanes.owner_key
           ) END AS served_at,
           CASE WHEN lanes.owner_key = '' THEN NULL
                ELSE coalesce(
                    (SELECT l.max_running FROM owner_limits AS l WHERE l.owner_key = lanes.owner_key),
                    CAST(:default_limit AS INTEGER)
                )
           END AS max_running
    FROM lanes
    WHERE lanes.owner_key IS NOT NULL
)
SELECT heads.owner_key, heads.max_running, heads.running, head.id, head.priority
FROM heads
JOIN generations AS head ON head.id = heads.head_id
WHERE heads.max_running IS NULL OR heads.running < heads.max_running
ORDER BY head.priority DESC, heads.running, heads.served_at, head.created_at, head.id
LIMIT :limit;

-- name: delete_renditions_of_generations(ids)!
-- The renditions' rows of dead letters being replayed (a JSON array of ids): made from a master each lost;
-- their worker exports a new one. Their files stay, each marked with its generation: the next render of the
-- request replaces it, reconcile takes away one no render makes again.
DELETE FROM renditions WHERE generation_id IN (SELECT value FROM json_each(:ids));

-- name: unfinished_among(ids)
-- Of these generation ids (a JSON array), those still pending or processing (a primary key lookup each, in the list's order: CROSS JOIN): the
-- poller wakes a wait_for only when its job finished or is gone, not at every commit (musicstore.waiting).
SELECT g.id FROM json_each(:ids) AS j CROSS JOIN generations AS g ON g.id = j.value
WHERE g.status IN ('pending', 'processing');
