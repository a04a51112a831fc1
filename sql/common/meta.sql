-- About the schema itself.

-- name: applied_migrations()
-- The yoyo migrations applied to this database.
SELECT migration_id FROM _yoyo_migration;

-- name: migration_lock_holder()^
-- yoyo's migration lock (one row while a migration runs): the process id that took it and when (UTC, as
-- text: yoyo's own tools write it in another form than sqlite3's timestamp converter reads).
SELECT pid, CAST(ctime AS TEXT) AS ctime FROM yoyo_lock;

-- name: drop_migration_lock(pid)!
-- Remove the migration lock that process ``pid`` took (a process that died holding it).
DELETE FROM yoyo_lock WHERE pid = :pid;
