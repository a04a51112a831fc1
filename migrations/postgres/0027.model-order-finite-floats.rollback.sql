-- Back to 0026: no index by model, no CHECKs refusing NaN (a NaN quality stays as it was made: NULL).
ALTER TABLE generations DROP CONSTRAINT IF EXISTS generations_generation_time_finite;
ALTER TABLE renditions DROP CONSTRAINT IF EXISTS renditions_quality_finite;
DROP INDEX IF EXISTS generations_model_created_at_id;
