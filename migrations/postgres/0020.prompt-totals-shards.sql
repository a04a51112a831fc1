-- prompt_totals in 16 shards, one per mod(pg_backend_pid(), 16) as generation_totals: a session's trigger
-- updates its own shard's row, so concurrent creates do not wait for each other's commits on one row. The
-- existing row (id 1) keeps its totals as shard 1; readers sum the shards (sql/postgres/stats.sql).
LOCK TABLE prompts, prompt_totals IN SHARE ROW EXCLUSIVE MODE;

ALTER TABLE prompt_totals DROP CONSTRAINT prompt_totals_id_check;
ALTER TABLE prompt_totals ADD CONSTRAINT prompt_totals_id_check CHECK (id BETWEEN 0 AND 15);

INSERT INTO prompt_totals (id)
SELECT shard FROM generate_series(0, 15) AS shard
WHERE shard <> 1;

CREATE OR REPLACE FUNCTION musicstore_count_prompts() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    my_shard INTEGER := mod(pg_backend_pid(), 16);
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE prompt_totals SET prompts = prompts + 1, uses = uses + NEW.used_count WHERE id = my_shard;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE prompt_totals SET prompts = prompts - 1, uses = uses - OLD.used_count WHERE id = my_shard;
    ELSE
        UPDATE prompt_totals SET uses = uses + NEW.used_count - OLD.used_count WHERE id = my_shard;
    END IF;
    RETURN NULL;
END
$$;
