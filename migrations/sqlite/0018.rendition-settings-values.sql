-- 0018's statements on SQLite, run by its Python step (migrations/0018.rendition-settings-values.py).

-- name: rendition_keys
-- Every rendition's request key, oldest first within a generation and format.
SELECT id, generation_id, format, settings
FROM renditions
ORDER BY generation_id, format, created_at, id;

-- name: delete_rendition
-- A later row of a request already kept (its file stays, an orphan for reconcile).
DELETE FROM renditions WHERE id = :id;

-- name: set_settings
-- A kept row's canonical key.
UPDATE renditions SET settings = :settings WHERE id = :id;

-- name: zero_levels
-- Nothing to do: SQLite reads a stored -0.0 back as 0.0 (an integral REAL is kept as an integer).
SELECT 1;
