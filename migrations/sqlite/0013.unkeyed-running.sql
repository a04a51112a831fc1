-- The processing jobs without an owner key (the keyed ones are counted in owner_lanes.running, 0012): a
-- keyed job's claim, finish or requeue no longer moves an entry of generations_lane_running.
CREATE INDEX generations_unkeyed_running ON generations (status)
    WHERE status = 'processing' AND owner_key IS NULL;

DROP INDEX generations_lane_running;
