-- Connection settings on PostgreSQL, like SQLite's PRAGMAs: run once on each new pooled connection.

-- name: set_lock_timeout(lock_timeout)^
-- How long a statement waits for a row lock another transaction holds before LockNotAvailable (musicstore's
-- DatabaseBusy): the store's busy_timeout, as SQLite waits for its writer lock. For the session (not only the
-- transaction): the pool's connections are in autocommit.
SELECT set_config('lock_timeout', :lock_timeout, false) AS lock_timeout;
