-- Back to 0025: no shard-lock function (this library's claims call it: migrate again to claim).
DROP FUNCTION IF EXISTS musicstore_lock_shard();
