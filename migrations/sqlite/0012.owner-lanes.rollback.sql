-- Back to 0010: the claim counts each key's processing jobs in generations_lane_running and walks the pending
-- jobs across lanes in generations_queue.
DROP TRIGGER generations_lanes_delete;
DROP TRIGGER generations_lanes_update;
DROP TRIGGER generations_lanes_finish;
DROP TRIGGER generations_lanes_move;
DROP TRIGGER generations_lanes_insert;
DROP TABLE owner_lanes;
CREATE INDEX generations_queue ON generations (priority DESC, created_at, id) WHERE status = 'pending';
