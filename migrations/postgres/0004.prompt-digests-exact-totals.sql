-- 1. Prompts are unique by digest, the SHA-256 of the text's UTF-8 bytes (32 bytes, computed by the library
--    and passed as a parameter; text is compared on every lookup). A btree entry over the text itself fails
--    above ~2.7 kB of incompressible text. Generations reference their prompt by digest. CHECKs tie each
--    digest to its text, so the foreign key on digests holds exactly what the one on texts did.
-- 2. Most used prompts: an index in the list's order (used_count DESC, id), so no sort at any size.
-- 3. Running totals of seconds are integer microseconds: each row adds and later removes exactly the same
--    integer, musicstore_micros(seconds), so sums never drift. They are recounted from the rows.
-- The tables are locked first, in the order writers take them, until the migration commits: no writer runs
-- between the recount and the new triggers.

LOCK TABLE prompts, prompt_totals, generations, generation_totals IN ACCESS EXCLUSIVE MODE;

ALTER TABLE prompts ADD COLUMN digest BYTEA;
UPDATE prompts SET digest = sha256(convert_to(text, 'UTF8'));
ALTER TABLE prompts
    ALTER COLUMN digest SET NOT NULL,
    ADD CONSTRAINT prompts_digest_key UNIQUE (digest),
    ADD CONSTRAINT prompts_digest_check CHECK (digest = sha256(convert_to(text, 'UTF8')));

ALTER TABLE generations ADD COLUMN prompt_digest BYTEA;
UPDATE generations SET prompt_digest = sha256(convert_to(prompt, 'UTF8'));
ALTER TABLE generations
    ALTER COLUMN prompt_digest SET NOT NULL,
    DROP CONSTRAINT generations_prompt_fkey,
    ADD CONSTRAINT generations_prompt_digest_fkey FOREIGN KEY (prompt_digest) REFERENCES prompts (digest),
    ADD CONSTRAINT generations_prompt_digest_check CHECK (prompt_digest = sha256(convert_to(prompt, 'UTF8')));

ALTER TABLE prompts DROP CONSTRAINT prompts_text_key;

DROP INDEX prompts_used_count;
CREATE INDEX prompts_used_count_id ON prompts (used_count DESC, id);

CREATE FUNCTION musicstore_micros(seconds DOUBLE PRECISION) RETURNS BIGINT
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CAST(trunc(seconds * 1000000 + 0.5) AS BIGINT) $$;

ALTER TABLE generation_totals
    DROP COLUMN generation_seconds,
    DROP COLUMN audio_seconds,
    ADD COLUMN generation_micros BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN audio_micros BIGINT NOT NULL DEFAULT 0;

UPDATE generation_totals SET generations = 0, file_bytes = 0;

UPDATE generation_totals AS t
SET generations = a.generations,
    file_bytes = a.file_bytes,
    generation_micros = a.generation_micros,
    audio_micros = a.audio_micros
FROM (
    SELECT status,
           count(*) AS generations,
           coalesce(sum(file_size_bytes), 0) AS file_bytes,
           coalesce(sum(musicstore_micros(generation_time_seconds)), 0) AS generation_micros,
           coalesce(sum(musicstore_micros(duration_seconds)), 0) AS audio_micros
    FROM generations
    GROUP BY status
) AS a
WHERE t.status = a.status AND t.shard = 0;

UPDATE prompt_totals
SET prompts = (SELECT count(*) FROM prompts), uses = (SELECT coalesce(sum(used_count), 0) FROM prompts)
WHERE id = 1;

CREATE OR REPLACE FUNCTION musicstore_count_generations() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    my_shard INTEGER := mod(pg_backend_pid(), 16);
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status = NEW.status THEN
        UPDATE generation_totals
        SET file_bytes = file_bytes + coalesce(NEW.file_size_bytes, 0) - coalesce(OLD.file_size_bytes, 0),
            generation_micros = generation_micros + coalesce(musicstore_micros(NEW.generation_time_seconds), 0)
                - coalesce(musicstore_micros(OLD.generation_time_seconds), 0),
            audio_micros = audio_micros + musicstore_micros(NEW.duration_seconds)
                - musicstore_micros(OLD.duration_seconds)
        WHERE status = NEW.status AND shard = my_shard;
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE generation_totals
        SET generations = generations - 1,
            file_bytes = file_bytes - coalesce(OLD.file_size_bytes, 0),
            generation_micros = generation_micros - coalesce(musicstore_micros(OLD.generation_time_seconds), 0),
            audio_micros = audio_micros - musicstore_micros(OLD.duration_seconds)
        WHERE status = OLD.status AND shard = my_shard;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        UPDATE generation_totals
        SET generations = generations + 1,
            file_bytes = file_bytes + coalesce(NEW.file_size_bytes, 0),
            generation_micros = generation_micros + coalesce(musicstore_micros(NEW.generation_time_seconds), 0),
            audio_micros = audio_micros + musicstore_micros(NEW.duration_seconds)
        WHERE status = NEW.status AND shard = my_shard;
    END IF;
    RETURN NULL;
END
$$;
