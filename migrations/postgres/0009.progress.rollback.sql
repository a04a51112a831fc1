-- Back to 0008: no wake-up triggers (waiting workers fall back to their periodic claim), no progress columns
-- (what workers reported is dropped), no throughput index.

DROP TRIGGER generations_notify_finished ON generations;
DROP TRIGGER generations_notify_pending ON generations;
DROP TRIGGER generations_notify_insert ON generations;
DROP FUNCTION musicstore_notify_finished();
DROP FUNCTION musicstore_notify_pending();
DROP INDEX generations_completed_at;
ALTER TABLE generations DROP COLUMN progress_at, DROP COLUMN stage, DROP COLUMN progress;
