-- Retries put back with a backoff (migration 0008): run_after = now + min(cap, base * 2^(attempts - 1)),
-- less a random part of up to `jitter` of it (random(), per row); base 0: at once (run_after NULL).
-- The delay in microseconds is rounded to the nearest, ties to even (the cast to BIGINT), as SQLite's
-- statement and Python's timedelta round it (make_interval's rounding of its seconds differs by version).

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
    run_after = CASE WHEN CAST(:base_seconds AS double precision) > 0 THEN CAST(:now AS timestamptz)
        + CAST(least(CAST(:cap_seconds AS double precision),
                     :base_seconds * power(2, least(greatest(attempts - 1, 0), 40)))
               * (1 - CAST(:jitter AS double precision) * random()) * 1000000 AS BIGINT)
          * interval '1 microsecond' END
WHERE id = :id AND status = 'processing' AND attempts < :max_attempts
  AND (CAST(:worker_id AS TEXT) IS NULL OR worker_id = :worker_id);

-- name: requeue_expired(now, max_attempts, base_seconds, cap_seconds, jitter)
-- processing -> pending for every expired lease with attempts left, each after its backoff (no progress; its
-- started_at stays, as a retry's).
-- A row another transaction holds is skipped (FOR UPDATE SKIP LOCKED, as a claim skips one): a worker on
-- another host completing its job (its upload runs inside that transaction, its lease may have run out
-- meanwhile) or heartbeating. Waiting for it held up every other expired job, then failed with DatabaseBusy
-- after lock_timeout and took back none; the next run takes the row if it is still expired.
UPDATE generations
SET status = 'pending',
    error_message = 'lease expired',
    worker_id = NULL,
    lease_expires_at = NULL,
    progress = NULL,
    stage = NULL,
    progress_at = NULL,
    run_after = CASE WHEN CAST(:base_seconds AS double precision) > 0 THEN CAST(:now AS timestamptz)
        + CAST(least(CAST(:cap_seconds AS double precision),
                     :base_seconds * power(2, least(greatest(attempts - 1, 0), 40)))
               * (1 - CAST(:jitter AS double precision) * random()) * 1000000 AS BIGINT)
          * interval '1 microsecond' END
WHERE id IN (
        SELECT id FROM generations
        WHERE status = 'processing' AND lease_expires_at <= :now AND attempts < :max_attempts
        FOR UPDATE SKIP LOCKED
    )
  AND status = 'processing' AND lease_expires_at <= :now AND attempts < :max_attempts
RETURNING id;

-- name: queue_heads(now, default_limit, limit)
-- The lanes a claim may take from, best first: the head of each lane with a ready job (run_after passed) and
-- room under its limit, ordered by the head's priority (higher first), then the lane's running jobs (fewer
-- first: fair across keys), then when the lane was last served (longest ago first: round robin among
-- equals; migration 0015), then the head's age and id. The distinct lanes are found by a loose index scan
-- (one probe of generations_lane_queue per lane), so the cost grows with the number of lanes with pending
-- jobs, never with the jobs; only the heads, one per lane, are sorted. PostgreSQL's version (SQLite's is in
-- sql/sqlite/queue.sql).
WITH RECURSIVE lanes (owner_key) AS (
    SELECT (
        SELECT coalesce(owner_key, '') FROM generations
        WHERE status = 'pending'
        ORDER BY coalesce(owner_key, '')
        LIMIT 1
    )
    UNION ALL
    SELECT (
        SELECT coalesce(g.owner_key, '') FROM generations AS g
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
           (
               SELECT count(*) FROM generations AS p
               WHERE coalesce(p.owner_key, '') = lanes.owner_key AND p.status = 'processing'
           ) AS running,
           CASE WHEN lanes.owner_key = '' THEN coalesce((
               SELECT max(s.started_at) FROM generations AS s
               WHERE s.owner_key IS NULL AND s.started_at IS NOT NULL
           ), timestamptz 'epoch') ELSE (
               SELECT coalesce(max(r.served_at), timestamptz 'epoch') FROM owner_lanes AS r
               WHERE r.owner_key = lanes.owner_key
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
DELETE FROM renditions WHERE generation_id IN (SELECT json_array_elements_text(CAST(:ids AS json)));

-- name: set_owner_limit(owner_key, max_running)!
-- Give a key a limit of its own (common/queue.sql's), and, when it lets any job of the key run (above 0),
-- NOTIFY musicstore_pending at the commit: the key may have room it had not (a paused key resumed, a limit
-- raised), and its jobs were pending all along, so no trigger notifies. Idle workers asleep in
-- claim_next(wait=...) wake and claim them at once (before, at their 1 s re-try; SQLite's poll sees any
-- commit). A limit lowered wakes them for one claim that finds what it found.
WITH woken AS MATERIALIZED (
    SELECT pg_notify('musicstore_pending', '') WHERE CAST(:max_running AS integer) > 0
)
INSERT INTO owner_limits (owner_key, max_running)
SELECT CAST(:owner_key AS text), CAST(:max_running AS integer) FROM (SELECT count(*) FROM woken) AS sent
WHERE true
ON CONFLICT (owner_key) DO UPDATE SET max_running = excluded.max_running;

-- name: delete_owner_limit(owner_key)!
-- The key goes back to the claim's default limit (common/queue.sql's), with NOTIFY musicstore_pending at the
-- commit: the default may let more of its jobs run (a paused key resumed).
WITH woken AS MATERIALIZED (SELECT pg_notify('musicstore_pending', ''))
DELETE FROM owner_limits WHERE owner_key = :owner_key AND EXISTS (SELECT 1 FROM woken);
