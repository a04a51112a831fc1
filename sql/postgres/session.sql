-- Connection settings on PostgreSQL, like SQLite's PRAGMAs: run once on each new pooled connection.

-- name: set_lock_timeout(lock_timeout)^
-- How long a statement waits for a row lock another transaction holds before LockNotAvailable (musicstore's
-- DatabaseBusy): the store's busy_timeout, as SQLite waits for its writer lock. For the session (not only the
-- transaction): the pool's connections are in autocommit.
-- And the session's TimeZone is UTC, whatever the server's, the database's or libpq's (PGTZ) setting: psycopg
-- builds a timestamptz in the session's zone, where a moment the store keeps (years 1 to 9999 in UTC) may lie
-- past the year 9999 or before the year 1 (no Python datetime: every read of its row failed); in UTC it is
-- the moment as written, with no conversion.
-- And extra_float_digits is 3, whatever the server's, the database's or the role's setting: a double goes out
-- as text with the digits this asks for; with 0 only 15 significant digits came (0.1 + 0.2 read back as 0.3),
-- where 1 or more gives the exact value (PostgreSQL 12 on: the shortest text that reads back exactly; before
-- it, 3 gives 17 digits). And DateStyle is ISO: psycopg reads a timestamptz sent as text in that style only
-- (with 'SQL, DMY', 'German' or 'Postgres' set for the server, database or role, every read of a moment
-- raised its NotImplementedError). And client_encoding is UTF8, whatever PGCLIENTENCODING or the database's or
-- role's setting: psycopg encodes and decodes text in it (LATIN1 refused an emoji; SQL_ASCII gave bytes).
-- And default_transaction_isolation is READ COMMITTED, whatever the database's or role's: the store's writes are
-- made for it (a statement sees what other transactions committed before it; a claim skips locked rows); with
-- REPEATABLE READ or SERIALIZABLE set there, a write that had read before another transaction committed a change
-- to its row failed with 'could not serialize access' (WriteConflict). Read snapshots name their own level.
-- And session_replication_role is origin: 'replica' (left on a database or role by a replication or DMS load,
-- or in PGOPTIONS) fires no trigger, so the totals and owners' lanes the triggers keep went unkept (counts read
-- 0, a job with an owner was never claimed) without an error. Set back only where it is not origin: setting it
-- needs a superuser (or GRANT SET), and a role that may not is refused here (the store says why).
-- And jit is off: the store's statements are short, and a plan whose cost passed jit_above_cost (a planner
-- method turned off for the database adds its penalty to the cost) was compiled on every claim: 1.7 s each
-- with enable_nestloop off, against 6 ms.
SELECT set_config('client_encoding', 'UTF8', false) AS client_encoding,
       set_config('lock_timeout', :lock_timeout, false) AS lock_timeout,
       set_config('TimeZone', 'UTC', false) AS time_zone,
       set_config('extra_float_digits', '3', false) AS extra_float_digits,
       set_config('DateStyle', 'ISO', false) AS date_style,
       set_config('default_transaction_isolation', 'read committed', false) AS isolation,
       set_config('jit', 'off', false) AS jit,
       CASE current_setting('session_replication_role')
           WHEN 'origin' THEN 'origin'
           ELSE set_config('session_replication_role', 'origin', false)
       END AS replication_role;

-- name: lift_statement_timeouts()^
-- A migration's session (musicstore.migrate): no statement_timeout nor idle_in_transaction_session_timeout,
-- whatever the database's or role's, as pg_dump and pg_restore set them. A migration's DDL waits for its
-- tables' locks (its lock_timeout is 0) and builds its indexes however long that takes: with a role's
-- statement_timeout of 500 ms, a migration waiting for a lock failed at it, and again at each try.
SELECT set_config('statement_timeout', '0', false) AS statement_timeout,
       set_config('idle_in_transaction_session_timeout', '0', false) AS idle_timeout;
