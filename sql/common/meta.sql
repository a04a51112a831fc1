-- About the schema itself.

-- name: applied_migrations()
-- The yoyo migrations applied to this database.
SELECT migration_id FROM _yoyo_migration;
