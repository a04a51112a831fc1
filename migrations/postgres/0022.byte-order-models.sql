-- The running totals by model list models by their bytes (SQLite's BINARY order), whatever collation the
-- database was created with. Same type: no table rewrite; the primary key (model_name, status, shard) is
-- rebuilt in the new order.
ALTER TABLE generation_model_totals ALTER COLUMN model_name TYPE TEXT COLLATE "C";
