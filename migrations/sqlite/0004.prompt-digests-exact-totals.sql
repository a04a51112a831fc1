-- 1. Prompts are unique by digest, the SHA-256 of the text's UTF-8 bytes (32 bytes, computed by the library
--    and passed as a parameter; text is compared on every lookup). Generations reference their prompt by
--    digest; a trigger checks that the prompt row with that digest holds the generation's prompt text.
-- 2. Most used prompts: an index in the list's order (used_count DESC, id), so no sort at any size.
-- 3. Running totals of seconds are integer microseconds: each row adds and later removes exactly the same
--    integer, CAST(seconds * 1000000 + 0.5 AS INTEGER), so sums never drift. They are recounted from the rows.
-- SQLite cannot change a column's constraints in place: prompts and generations are rebuilt (copied, dropped,
-- renamed), then their indexes and triggers are created again.

CREATE TABLE prompts_new (
    id            INTEGER PRIMARY KEY,
    text          TEXT    NOT NULL CHECK (length(trim(text)) > 0),
    used_count    INTEGER NOT NULL DEFAULT 0 CHECK (used_count >= 0),
    first_used_at INTEGER NOT NULL,
    last_used_at  INTEGER NOT NULL CHECK (last_used_at >= first_used_at),
    digest        BLOB    NOT NULL UNIQUE CHECK (length(digest) = 32)
) STRICT;

INSERT INTO prompts_new (id, text, used_count, first_used_at, last_used_at, digest)
SELECT id, text, used_count, first_used_at, last_used_at, musicstore_sha256(text) FROM prompts;

CREATE TABLE generations_new (
    id                      TEXT    PRIMARY KEY CHECK (length(id) = 36),
    prompt                  TEXT    NOT NULL,
    model_name              TEXT    NOT NULL CHECK (length(model_name) BETWEEN 1 AND 200),
    model_version           TEXT    CHECK (length(model_version) <= 200),
    duration_seconds        REAL    NOT NULL CHECK (duration_seconds > 0 AND duration_seconds <= 86400),
    sample_rate             INTEGER NOT NULL CHECK (sample_rate BETWEEN 8000 AND 384000),
    channels                INTEGER NOT NULL CHECK (channels BETWEEN 1 AND 8),
    status                  TEXT    NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    file_path               TEXT,
    file_size_bytes         INTEGER CHECK (file_size_bytes >= 0),
    created_at              INTEGER NOT NULL,
    started_at              INTEGER,
    completed_at            INTEGER,
    generation_time_seconds REAL    CHECK (generation_time_seconds >= 0),
    error_message           TEXT,
    attempts                INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    worker_id               TEXT,
    lease_expires_at        INTEGER,
    metadata                TEXT    NOT NULL DEFAULT '{}'
        CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
    prompt_digest           BLOB    NOT NULL REFERENCES prompts (digest),
    CHECK (status <> 'processing' OR (worker_id IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CHECK (status <> 'completed' OR (file_path IS NOT NULL AND file_size_bytes IS NOT NULL))
) STRICT;

INSERT INTO generations_new (
    id, prompt, model_name, model_version, duration_seconds, sample_rate, channels, status, file_path,
    file_size_bytes, created_at, started_at, completed_at, generation_time_seconds, error_message, attempts,
    worker_id, lease_expires_at, metadata, prompt_digest
)
SELECT id, prompt, model_name, model_version, duration_seconds, sample_rate, channels, status, file_path,
       file_size_bytes, created_at, started_at, completed_at, generation_time_seconds, error_message, attempts,
       worker_id, lease_expires_at, metadata, musicstore_sha256(prompt)
FROM generations;

DROP TABLE generations;
DROP TABLE prompts;
ALTER TABLE prompts_new RENAME TO prompts;
ALTER TABLE generations_new RENAME TO generations;

CREATE INDEX generations_status_created_at_id ON generations (status, created_at, id);
CREATE INDEX generations_created_at ON generations (created_at);
CREATE INDEX generations_file_path ON generations (file_path) WHERE file_path IS NOT NULL;
CREATE INDEX prompts_used_count_id ON prompts (used_count DESC, id);

DROP TABLE generation_totals;

CREATE TABLE generation_totals (
    status            TEXT    PRIMARY KEY
        CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    generations       INTEGER NOT NULL DEFAULT 0,
    file_bytes        INTEGER NOT NULL DEFAULT 0,
    generation_micros INTEGER NOT NULL DEFAULT 0,
    audio_micros      INTEGER NOT NULL DEFAULT 0
) STRICT, WITHOUT ROWID;

INSERT INTO generation_totals (status)
VALUES ('pending'), ('processing'), ('completed'), ('failed'), ('cancelled');

UPDATE generation_totals
SET (generations, file_bytes, generation_micros, audio_micros) = (
    SELECT count(*),
           coalesce(sum(file_size_bytes), 0),
           coalesce(sum(CAST(generation_time_seconds * 1000000 + 0.5 AS INTEGER)), 0),
           coalesce(sum(CAST(duration_seconds * 1000000 + 0.5 AS INTEGER)), 0)
    FROM generations AS g
    WHERE g.status = generation_totals.status
);

UPDATE prompt_totals
SET prompts = (SELECT count(*) FROM prompts), uses = (SELECT coalesce(sum(used_count), 0) FROM prompts)
WHERE id = 1;

CREATE TRIGGER generations_prompt_insert BEFORE INSERT ON generations
WHEN NOT EXISTS (SELECT 1 FROM prompts WHERE digest = NEW.prompt_digest AND text = NEW.prompt)
BEGIN
    SELECT RAISE(ABORT, 'generations.prompt must be the text of the prompt row its prompt_digest names');
END;

CREATE TRIGGER generations_prompt_update BEFORE UPDATE OF prompt, prompt_digest ON generations
WHEN NOT EXISTS (SELECT 1 FROM prompts WHERE digest = NEW.prompt_digest AND text = NEW.prompt)
BEGIN
    SELECT RAISE(ABORT, 'generations.prompt must be the text of the prompt row its prompt_digest names');
END;

CREATE TRIGGER generations_count_insert AFTER INSERT ON generations
BEGIN
    UPDATE generation_totals
    SET generations = generations + 1,
        file_bytes = file_bytes + coalesce(NEW.file_size_bytes, 0),
        generation_micros = generation_micros
            + coalesce(CAST(NEW.generation_time_seconds * 1000000 + 0.5 AS INTEGER), 0),
        audio_micros = audio_micros + CAST(NEW.duration_seconds * 1000000 + 0.5 AS INTEGER)
    WHERE status = NEW.status;
END;

CREATE TRIGGER generations_count_delete AFTER DELETE ON generations
BEGIN
    UPDATE generation_totals
    SET generations = generations - 1,
        file_bytes = file_bytes - coalesce(OLD.file_size_bytes, 0),
        generation_micros = generation_micros
            - coalesce(CAST(OLD.generation_time_seconds * 1000000 + 0.5 AS INTEGER), 0),
        audio_micros = audio_micros - CAST(OLD.duration_seconds * 1000000 + 0.5 AS INTEGER)
    WHERE status = OLD.status;
END;

CREATE TRIGGER generations_count_update
AFTER UPDATE OF status, file_size_bytes, generation_time_seconds, duration_seconds ON generations
BEGIN
    UPDATE generation_totals
    SET generations = generations - 1,
        file_bytes = file_bytes - coalesce(OLD.file_size_bytes, 0),
        generation_micros = generation_micros
            - coalesce(CAST(OLD.generation_time_seconds * 1000000 + 0.5 AS INTEGER), 0),
        audio_micros = audio_micros - CAST(OLD.duration_seconds * 1000000 + 0.5 AS INTEGER)
    WHERE status = OLD.status;
    UPDATE generation_totals
    SET generations = generations + 1,
        file_bytes = file_bytes + coalesce(NEW.file_size_bytes, 0),
        generation_micros = generation_micros
            + coalesce(CAST(NEW.generation_time_seconds * 1000000 + 0.5 AS INTEGER), 0),
        audio_micros = audio_micros + CAST(NEW.duration_seconds * 1000000 + 0.5 AS INTEGER)
    WHERE status = NEW.status;
END;

CREATE TRIGGER prompts_count_insert AFTER INSERT ON prompts
BEGIN
    UPDATE prompt_totals SET prompts = prompts + 1, uses = uses + NEW.used_count WHERE id = 1;
END;

CREATE TRIGGER prompts_count_delete AFTER DELETE ON prompts
BEGIN
    UPDATE prompt_totals SET prompts = prompts - 1, uses = uses - OLD.used_count WHERE id = 1;
END;

CREATE TRIGGER prompts_count_update AFTER UPDATE OF used_count ON prompts
BEGIN
    UPDATE prompt_totals SET uses = uses + NEW.used_count - OLD.used_count WHERE id = 1;
END;
