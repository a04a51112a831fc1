-- Back to 0026: no index by model, no CHECKs refusing NaN (a NaN quality stays as it was made: NULL).
ALTER TABLE generations DROP CONSTRAINT generations_generation_time_finite;
ALTER TABLE renditions DROP CONSTRAINT renditions_quality_finite;
DROP INDEX generations_model_created_at_id;
