-- The claim's lock of its session's shard of the totals (the shard the trigger generations_count writes,
-- mod(pg_backend_pid(), 16)): its processing row, then its pending row (a requeue's trigger's order: old
-- status, then new), FOR NO KEY UPDATE, held to the end of the transaction. A claim takes it before any
-- lane's row or claim lock (sql/postgres/claim.sql), as every write of a job takes the shard before its
-- lane's row. A function so that its statements' plans are kept by the session: as sub-selects of the
-- claim's statements they cost about 20-60 us of CPU a claim. Returns true.
CREATE OR REPLACE FUNCTION musicstore_lock_shard() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM FROM generation_totals
    WHERE status = 'processing' AND shard = mod(pg_backend_pid(), 16)
    FOR NO KEY UPDATE;
    PERFORM FROM generation_totals
    WHERE status = 'pending' AND shard = mod(pg_backend_pid(), 16)
    FOR NO KEY UPDATE;
    RETURN true;
END
$$;
