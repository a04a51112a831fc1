-- Back to 0007: one queue, oldest first; keys, limits, priorities and retry times are dropped.

DROP TABLE owner_limits;
DROP INDEX generations_lane_running;
DROP INDEX generations_lane_queue;
DROP INDEX generations_idempotency_key;
ALTER TABLE generations DROP COLUMN idempotency_key, DROP COLUMN owner_key, DROP COLUMN run_after,
    DROP COLUMN priority;
