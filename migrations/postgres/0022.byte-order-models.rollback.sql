-- Back to the database's default collation (the primary key rebuilt in its order).
ALTER TABLE generation_model_totals ALTER COLUMN model_name TYPE TEXT COLLATE "default";
