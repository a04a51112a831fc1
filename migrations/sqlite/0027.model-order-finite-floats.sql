-- The generations of one model in creation order: the dashboard's model filter and
-- list_generations(model_name=...), newest first, read only that model's rows. (SQLite stores a NaN as NULL:
-- no CHECK needed against one.)
CREATE INDEX IF NOT EXISTS generations_model_created_at_id ON generations (model_name, created_at, id);
