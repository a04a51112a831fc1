-- Back to 0004: no totals by model or by day (those figures group the rows again), no pending index.

DROP INDEX generations_pending;

DROP TRIGGER generations_day_totals_update ON generations;
DROP TRIGGER generations_day_totals ON generations;
DROP TRIGGER generations_model_totals_update ON generations;
DROP TRIGGER generations_model_totals ON generations;
DROP FUNCTION musicstore_count_generation_days();
DROP FUNCTION musicstore_count_generation_models();
DROP TABLE generation_day_totals;
DROP TABLE generation_model_totals;
