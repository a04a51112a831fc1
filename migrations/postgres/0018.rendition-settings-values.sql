-- 0018's statements on PostgreSQL, run by its Python step (migrations/0018.rendition-settings-values.py).

-- name: rendition_keys
-- Every rendition's request key, oldest first within a generation and format.
SELECT id, generation_id, format, settings
FROM renditions
ORDER BY generation_id, format, created_at, id;

-- name: delete_rendition
-- A later row of a request already kept (its file stays, an orphan for reconcile).
DELETE FROM renditions WHERE id = %(id)s;

-- name: set_settings
-- A kept row's canonical key.
UPDATE renditions SET settings = %(settings)s WHERE id = %(id)s;

-- name: zero_levels
-- -0.0 as 0.0 in the columns the library now writes 0.0 to (double precision keeps the sign of zero).
UPDATE renditions
SET quality = CASE WHEN CAST(quality AS text) = '-0' THEN 0 ELSE quality END,
    target_lufs = CASE WHEN CAST(target_lufs AS text) = '-0' THEN 0 ELSE target_lufs END,
    ceiling_dbtp = CASE WHEN CAST(ceiling_dbtp AS text) = '-0' THEN 0 ELSE ceiling_dbtp END
WHERE CAST(quality AS text) = '-0' OR CAST(target_lufs AS text) = '-0' OR CAST(ceiling_dbtp AS text) = '-0';
