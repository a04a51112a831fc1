-- The job store on PostgreSQL: the same tables, columns, constraints and indexes as on SQLite, in
-- PostgreSQL's types (timestamptz, identity). metadata is JSON text checked as a JSON object, not jsonb:
-- jsonb rewrites numbers (2.460214870732887e16 reads back as 24602148707328870) and refuses \u0000, and
-- metadata must read back exactly; query it with CAST(metadata AS jsonb). Running totals are kept by a trigger in 16 shards
-- per status, chosen by the session, so concurrent workers do not queue on one counter row.

CREATE TABLE prompts (
    id            BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    text          TEXT        NOT NULL UNIQUE CHECK (length(btrim(text)) > 0),
    used_count    BIGINT      NOT NULL DEFAULT 0 CHECK (used_count >= 0),
    first_used_at TIMESTAMPTZ NOT NULL,
    last_used_at  TIMESTAMPTZ NOT NULL CHECK (last_used_at >= first_used_at)
);

CREATE TABLE generations (
    id                      TEXT             PRIMARY KEY CHECK (length(id) = 36),
    prompt                  TEXT             NOT NULL REFERENCES prompts (text),
    model_name              TEXT             NOT NULL CHECK (length(model_name) BETWEEN 1 AND 200),
    model_version           TEXT             CHECK (length(model_version) <= 200),
    duration_seconds        DOUBLE PRECISION NOT NULL CHECK (duration_seconds > 0 AND duration_seconds <= 86400),
    sample_rate             INTEGER          NOT NULL CHECK (sample_rate BETWEEN 8000 AND 384000),
    channels                INTEGER          NOT NULL CHECK (channels BETWEEN 1 AND 8),
    status                  TEXT             NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    file_path               TEXT,
    file_size_bytes         BIGINT           CHECK (file_size_bytes >= 0),
    created_at              TIMESTAMPTZ      NOT NULL,
    started_at              TIMESTAMPTZ,
    completed_at            TIMESTAMPTZ,
    generation_time_seconds DOUBLE PRECISION CHECK (generation_time_seconds >= 0),
    error_message           TEXT,
    attempts                INTEGER          NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    worker_id               TEXT,
    lease_expires_at        TIMESTAMPTZ,
    metadata                TEXT             NOT NULL DEFAULT '{}'
        CHECK (json_typeof(CAST(metadata AS json)) = 'object'),
    CHECK (status <> 'processing' OR (worker_id IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CHECK (status <> 'completed' OR (file_path IS NOT NULL AND file_size_bytes IS NOT NULL))
);

CREATE INDEX generations_status_created_at ON generations (status, created_at);
CREATE INDEX generations_created_at ON generations (created_at);
CREATE INDEX prompts_used_count ON prompts (used_count);

CREATE TABLE generation_totals (
    status             TEXT             NOT NULL
        CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    shard              INTEGER          NOT NULL CHECK (shard BETWEEN 0 AND 15),
    generations        BIGINT           NOT NULL DEFAULT 0,
    file_bytes         BIGINT           NOT NULL DEFAULT 0,
    generation_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
    audio_seconds      DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (status, shard)
);

INSERT INTO generation_totals (status, shard)
SELECT status, shard
FROM unnest(ARRAY['pending', 'processing', 'completed', 'failed', 'cancelled']) AS status
CROSS JOIN generate_series(0, 15) AS shard;

CREATE TABLE prompt_totals (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    prompts BIGINT  NOT NULL DEFAULT 0,
    uses    BIGINT  NOT NULL DEFAULT 0
);

INSERT INTO prompt_totals (id) VALUES (1);

CREATE FUNCTION musicstore_count_generations() RETURNS trigger LANGUAGE plpgsql AS $$
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

CREATE TRIGGER generations_count
AFTER INSERT OR DELETE OR UPDATE OF status, file_size_bytes, generation_time_seconds, duration_seconds
ON generations
FOR EACH ROW EXECUTE FUNCTION musicstore_count_generations();

CREATE FUNCTION musicstore_count_prompts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE prompt_totals SET prompts = prompts + 1, uses = uses + NEW.used_count WHERE id = 1;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE prompt_totals SET prompts = prompts - 1, uses = uses - OLD.used_count WHERE id = 1;
    ELSE
        UPDATE prompt_totals SET uses = uses + NEW.used_count - OLD.used_count WHERE id = 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER prompts_count
AFTER INSERT OR DELETE OR UPDATE OF used_count ON prompts
FOR EACH ROW EXECUTE FUNCTION musicstore_count_prompts();
