-- Connection settings on PostgreSQL, like SQLite's PRAGMAs: run once on each new pooled connection.

-- name: set_lock_timeout(lock_timeout)^
-- How long a statement waits for a row lock another transaction holds before LockNotAvailable (musicstore's
-- DatabaseBusy): the store's busy_timeout, as SQLite waits for its writer lock. For the session (not only the
-- transaction): the pool's connections are in autocommit.
-- And the session's TimeZone is UTC, whatever the server's, the database's or libpq's (PGTZ) setting: psycopg
-- builds a timestamptz in the session's zone, where a moment the store keeps (years 1 to 9999 in UTC) may lie
-- past the year 9999 or before the year 1 (no Python datetime: every read of its row failed); in UTC it is
-- the moment as written, with no conversion.
SELECT set_config('lock_timeout', :lock_timeout, false) AS lock_timeout,
       set_config('TimeZone', 'UTC', false) AS time_zone;
