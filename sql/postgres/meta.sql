-- About the server itself (PostgreSQL only).

-- name: server_clock()^
-- The server's clock now (not the transaction's start): compared with the store's clock when a store opens
-- (runner.warn_skew), since leases and retry times are written by each host's clock.
SELECT clock_timestamp() AS now;
