-- The failed generations by when they failed (a failed row's completed_at): the dashboard's recent failures.
CREATE INDEX generations_failed_at ON generations (completed_at, id) WHERE status = 'failed';
