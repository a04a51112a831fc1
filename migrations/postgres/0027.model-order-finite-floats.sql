-- 1. The generations of one model in creation order: the dashboard's model filter and
--    list_generations(model_name=...), newest first, read only that model's rows.
CREATE INDEX IF NOT EXISTS generations_model_created_at_id ON generations (model_name, created_at, id);
-- 2. No NaN or infinity where the column's CHECK holds for one ('NaN' compares above every number, so a
--    lower bound alone lets it in): a rendition's quality, a generation's time. A NaN or infinite quality
--    written by SQL becomes NULL first (what SQLite stores for a NaN); no generation time can hold one (the
--    totals trigger refused it).
UPDATE renditions SET quality = NULL WHERE quality IN ('NaN', 'Infinity');
-- Each step may run again over itself (a migration record lost): the CHECKs are dropped first if there.
ALTER TABLE renditions
    DROP CONSTRAINT IF EXISTS renditions_quality_finite,
    ADD CONSTRAINT renditions_quality_finite CHECK (quality <> 'NaN' AND quality <> 'Infinity');
ALTER TABLE generations
    DROP CONSTRAINT IF EXISTS generations_generation_time_finite,
    ADD CONSTRAINT generations_generation_time_finite
    CHECK (generation_time_seconds <> 'NaN' AND generation_time_seconds <> 'Infinity');
