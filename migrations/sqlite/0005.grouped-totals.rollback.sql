-- Back to 0004: no totals by model or by day (those figures group the rows again).

DROP TRIGGER generations_day_totals_update;
DROP TRIGGER generations_day_totals_delete;
DROP TRIGGER generations_day_totals_insert;
DROP TRIGGER generations_model_totals_update;
DROP TRIGGER generations_model_totals_delete;
DROP TRIGGER generations_model_totals_insert;
DROP TABLE generation_day_totals;
DROP TABLE generation_model_totals;
