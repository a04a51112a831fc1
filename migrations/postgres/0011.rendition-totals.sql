-- Running totals of the renditions, kept by triggers in the writing transaction like generation_totals, so
-- that storage statistics read at most 16 rows instead of summing the renditions table. As there, the totals
-- are kept in up to 16 shards chosen by the session's backend pid (concurrent renders do not queue on one
-- row); a shard's row is created by an upsert the first time that session changes the totals, and may go
-- negative (another session added what this one removes): only the sum over the shards means anything.
-- A generation's delete cascades to its renditions, whose row triggers fire for those deletes too.
-- renditions is locked against writes (readers go on) until the migration commits: no writer runs between
-- the count and the new triggers.

LOCK TABLE renditions IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE rendition_totals (
    shard      INTEGER NOT NULL PRIMARY KEY CHECK (shard BETWEEN 0 AND 15),
    renditions BIGINT  NOT NULL DEFAULT 0,
    file_bytes BIGINT  NOT NULL DEFAULT 0
);

INSERT INTO rendition_totals (shard, renditions, file_bytes)
SELECT 0, count(*), coalesce(sum(file_size_bytes), 0) FROM renditions;

CREATE FUNCTION musicstore_count_renditions() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    my_shard INTEGER := mod(pg_backend_pid(), 16);
    counted BIGINT := 0;
    bytes BIGINT := 0;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        counted := counted - 1;
        bytes := bytes - OLD.file_size_bytes;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        counted := counted + 1;
        bytes := bytes + NEW.file_size_bytes;
    END IF;
    INSERT INTO rendition_totals AS t (shard, renditions, file_bytes)
    VALUES (my_shard, counted, bytes)
    ON CONFLICT (shard) DO UPDATE
    SET renditions = t.renditions + excluded.renditions, file_bytes = t.file_bytes + excluded.file_bytes;
    RETURN NULL;
END
$$;

CREATE TRIGGER renditions_totals
AFTER INSERT OR DELETE ON renditions
FOR EACH ROW EXECUTE FUNCTION musicstore_count_renditions();

CREATE TRIGGER renditions_totals_update
AFTER UPDATE OF file_size_bytes ON renditions
FOR EACH ROW
WHEN (OLD.file_size_bytes IS DISTINCT FROM NEW.file_size_bytes)
EXECUTE FUNCTION musicstore_count_renditions();
