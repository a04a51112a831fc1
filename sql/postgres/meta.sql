-- About the server itself (PostgreSQL only).

-- name: server_clock()^
-- The server's clock now (not the transaction's start): compared with the store's clock when a store opens
-- (runner.warn_skew), since leases and retry times are written by each host's clock.
SELECT clock_timestamp() AS now;

-- name: migration_schemas()^
-- Where a migration would create its tables: the first schema of search_path that exists (NULL: none), where
-- yoyo looks for its own; where yoyo's table of applied migrations is found through search_path (NULL: not
-- found); and the database's encoding (musicstore.migrate_schema).
SELECT current_schema() AS creating,
       (SELECT n.nspname
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.oid = to_regclass('_yoyo_migration')) AS applied,
       current_setting('search_path') AS search_path,
       current_setting('server_encoding') AS encoding;
