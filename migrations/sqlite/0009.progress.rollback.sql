-- Back to 0008: no progress columns (what workers reported is dropped), no throughput index.

DROP INDEX generations_completed_at;
ALTER TABLE generations DROP COLUMN progress_at;
ALTER TABLE generations DROP COLUMN stage;
ALTER TABLE generations DROP COLUMN progress;
