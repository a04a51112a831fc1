-- Back to 0026: no index by model.
DROP INDEX IF EXISTS generations_model_created_at_id;
