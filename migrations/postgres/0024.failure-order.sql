-- The failed generations by when they failed (a failed row's completed_at): the dashboard's recent failures,
-- newest first; a failed row without a completed_at (imported so) last, as SQLite orders NULL (the lowest).
CREATE INDEX generations_failed_at ON generations (completed_at DESC NULLS LAST, id DESC) WHERE status = 'failed';
