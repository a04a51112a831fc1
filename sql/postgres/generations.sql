-- PostgreSQL's own versions of generation queries.

-- name: get_generation_for_update(id)^
-- One generation by id, locked until the end of the transaction (READ COMMITTED needs the lock where
-- SQLite's single writer already excludes others).
SELECT * FROM generations WHERE id = :id FOR UPDATE;
