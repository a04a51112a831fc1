-- Pending jobs in claim order across every lane (priority DESC, created_at, id): the claim's fast path walks
-- the first few ready ones to find the best lane without ranking them all. The priority is the expression
-- -priority (as integer: -(-32768) is no smallint), which only queue_first's ORDER BY names: a plain
-- (priority DESC, ...) index drew the planner away from generations_lane_queue for a lane's head and its
-- count of higher priorities whenever most pending jobs were in one lane.
CREATE INDEX generations_queue ON generations ((-CAST(priority AS integer)), created_at, id)
    WHERE status = 'pending';
