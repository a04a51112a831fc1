-- Back to 0003's schema: prompts unique by text, generations referencing prompts (text), totals of seconds
-- as DOUBLE PRECISION sums (recounted from the rows), prompts_used_count (used_count). Fails, changing
-- nothing, when a prompt is too long for a btree entry (~2.7 kB of incompressible text): 0003 cannot hold it.

LOCK TABLE prompts, prompt_totals, generations, generation_totals IN ACCESS EXCLUSIVE MODE;

CREATE OR REPLACE FUNCTION musicstore_count_generations() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    my_shard INTEGER := mod(pg_backend_pid(), 16);
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status = NEW.status THEN
        UPDATE generation_totals
        SET file_bytes = file_bytes + coalesce(NEW.file_size_bytes, 0) - coalesce(OLD.file_size_bytes, 0),
            generation_seconds = generation_seconds + coalesce(NEW.generation_time_seconds, 0)
                - coalesce(OLD.generation_time_seconds, 0),
            audio_seconds = audio_seconds + NEW.duration_seconds - OLD.duration_seconds
        WHERE status = NEW.status AND shard = my_shard;
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE generation_totals
        SET generations = generations - 1,
            file_bytes = file_bytes - coalesce(OLD.file_size_bytes, 0),
            generation_seconds = generation_seconds - coalesce(OLD.generation_time_seconds, 0),
            audio_seconds = audio_seconds - OLD.duration_seconds
        WHERE status = OLD.status AND shard = my_shard;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        UPDATE generation_totals
        SET generations = generations + 1,
            file_bytes = file_bytes + coalesce(NEW.file_size_bytes, 0),
            generation_seconds = generation_seconds + coalesce(NEW.generation_time_seconds, 0),
            audio_seconds = audio_seconds + NEW.duration_seconds
        WHERE status = NEW.status AND shard = my_shard;
    END IF;
    RETURN NULL;
END
$$;

ALTER TABLE generation_totals
    DROP COLUMN generation_micros,
    DROP COLUMN audio_micros,
    ADD COLUMN generation_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
    ADD COLUMN audio_seconds DOUBLE PRECISION NOT NULL DEFAULT 0;

UPDATE generation_totals SET generations = 0, file_bytes = 0;

UPDATE generation_totals AS t
SET generations = a.generations,
    file_bytes = a.file_bytes,
    generation_seconds = a.generation_seconds,
    audio_seconds = a.audio_seconds
FROM (
    SELECT status,
           count(*) AS generations,
           coalesce(sum(file_size_bytes), 0) AS file_bytes,
           coalesce(sum(generation_time_seconds), 0) AS generation_seconds,
           coalesce(sum(duration_seconds), 0) AS audio_seconds
    FROM generations
    GROUP BY status
) AS a
WHERE t.status = a.status AND t.shard = 0;

DROP FUNCTION musicstore_micros(DOUBLE PRECISION);

DROP INDEX prompts_used_count_id;
CREATE INDEX prompts_used_count ON prompts (used_count);

ALTER TABLE prompts ADD CONSTRAINT prompts_text_key UNIQUE (text);
ALTER TABLE generations
    DROP COLUMN prompt_digest,
    ADD CONSTRAINT generations_prompt_fkey FOREIGN KEY (prompt) REFERENCES prompts (text);
ALTER TABLE prompts DROP COLUMN digest;
