-- Back to 0012: every job's status and owner key in generations_lane_running.
CREATE INDEX generations_lane_running ON generations (status, coalesce(owner_key, ''));

DROP INDEX generations_unkeyed_running;
