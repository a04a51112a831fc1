-- Back to 0010: the claim counts each key's processing jobs in generations_lane_running and walks the pending
-- jobs across lanes in generations_queue.
DROP TRIGGER generations_lanes_delete ON generations;
DROP TRIGGER generations_lanes_update ON generations;
DROP TRIGGER generations_lanes_insert ON generations;
DROP FUNCTION musicstore_owner_lanes();
DROP TABLE owner_lanes;
CREATE INDEX generations_queue ON generations ((-CAST(priority AS integer)), created_at, id)
    WHERE status = 'pending';
