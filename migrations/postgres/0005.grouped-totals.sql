-- Running totals by (model, status) and by UTC day of creation, kept by triggers in the writing transaction
-- like generation_totals, so that counts by model and storage figures by model and by day read a few rows
-- instead of grouping every generation. As there, each key is kept in up to 16 shards chosen by the session's
-- backend pid (concurrent workers do not queue on one row); a shard's row is created by an upsert the first
-- time that session changes the key, and may go negative (another session added what this one removes): only
-- the sum over a key's shards means anything. Zero rows stay; the queries skip keys whose sum is zero.
-- generations is locked against writes (readers go on) until the migration commits: no writer runs between
-- the recount and the new triggers.

LOCK TABLE generations IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE generation_model_totals (
    model_name  TEXT    NOT NULL,
    status      TEXT    NOT NULL
        CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    shard       INTEGER NOT NULL CHECK (shard BETWEEN 0 AND 15),
    generations BIGINT  NOT NULL DEFAULT 0,
    file_bytes  BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (model_name, status, shard)
);

-- day: the UTC day of created_at
CREATE TABLE generation_day_totals (
    day         DATE    NOT NULL,
    shard       INTEGER NOT NULL CHECK (shard BETWEEN 0 AND 15),
    generations BIGINT  NOT NULL DEFAULT 0,
    file_bytes  BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (day, shard)
);

INSERT INTO generation_model_totals (model_name, status, shard, generations, file_bytes)
SELECT model_name, status, 0, count(*), coalesce(sum(file_size_bytes), 0)
FROM generations
GROUP BY model_name, status;

INSERT INTO generation_day_totals (day, shard, generations, file_bytes)
SELECT CAST(created_at AT TIME ZONE 'UTC' AS DATE), 0, count(*), coalesce(sum(file_size_bytes), 0)
FROM generations
GROUP BY 1;

-- One upsert per change, its deltas summed by key and applied in key order (a status change moves a count
-- from one key to another: every session takes the two rows in the same order).
CREATE FUNCTION musicstore_count_generation_models() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    my_shard INTEGER := mod(pg_backend_pid(), 16);
BEGIN
    INSERT INTO generation_model_totals AS t (model_name, status, shard, generations, file_bytes)
    SELECT d.model_name, d.status, my_shard, sum(d.generations), sum(d.file_bytes)
    FROM (
        SELECT OLD.model_name, OLD.status, -1, -coalesce(OLD.file_size_bytes, 0) WHERE TG_OP <> 'INSERT'
        UNION ALL
        SELECT NEW.model_name, NEW.status, 1, coalesce(NEW.file_size_bytes, 0) WHERE TG_OP <> 'DELETE'
    ) AS d (model_name, status, generations, file_bytes)
    GROUP BY d.model_name, d.status
    ORDER BY d.model_name, d.status
    ON CONFLICT (model_name, status, shard) DO UPDATE
    SET generations = t.generations + excluded.generations, file_bytes = t.file_bytes + excluded.file_bytes;
    RETURN NULL;
END
$$;

CREATE FUNCTION musicstore_count_generation_days() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    my_shard INTEGER := mod(pg_backend_pid(), 16);
BEGIN
    INSERT INTO generation_day_totals AS t (day, shard, generations, file_bytes)
    SELECT d.day, my_shard, sum(d.generations), sum(d.file_bytes)
    FROM (
        SELECT CAST(OLD.created_at AT TIME ZONE 'UTC' AS DATE), -1, -coalesce(OLD.file_size_bytes, 0)
        WHERE TG_OP <> 'INSERT'
        UNION ALL
        SELECT CAST(NEW.created_at AT TIME ZONE 'UTC' AS DATE), 1, coalesce(NEW.file_size_bytes, 0)
        WHERE TG_OP <> 'DELETE'
    ) AS d (day, generations, file_bytes)
    GROUP BY d.day
    ORDER BY d.day
    ON CONFLICT (day, shard) DO UPDATE
    SET generations = t.generations + excluded.generations, file_bytes = t.file_bytes + excluded.file_bytes;
    RETURN NULL;
END
$$;

CREATE TRIGGER generations_model_totals
AFTER INSERT OR DELETE ON generations
FOR EACH ROW EXECUTE FUNCTION musicstore_count_generation_models();

CREATE TRIGGER generations_model_totals_update
AFTER UPDATE OF status, model_name, file_size_bytes ON generations
FOR EACH ROW
WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.model_name IS DISTINCT FROM NEW.model_name
      OR OLD.file_size_bytes IS DISTINCT FROM NEW.file_size_bytes)
EXECUTE FUNCTION musicstore_count_generation_models();

CREATE TRIGGER generations_day_totals
AFTER INSERT OR DELETE ON generations
FOR EACH ROW EXECUTE FUNCTION musicstore_count_generation_days();

CREATE TRIGGER generations_day_totals_update
AFTER UPDATE OF created_at, file_size_bytes ON generations
FOR EACH ROW
WHEN (OLD.created_at IS DISTINCT FROM NEW.created_at
      OR OLD.file_size_bytes IS DISTINCT FROM NEW.file_size_bytes)
EXECUTE FUNCTION musicstore_count_generation_days();

-- The queue (claim_next, claim_batch, get_pending_generations: oldest pending first) in a partial index of
-- the pending rows alone, in the claim's order. With (status, created_at, id) only, PostgreSQL's planner
-- walked the time index once ~10 % of rows were pending, filtering out every row older than the queue's head.
-- (PostgreSQL only: SQLite's planner keeps to the status index, which serves it.)
CREATE INDEX generations_pending ON generations (created_at, id) WHERE status = 'pending';
