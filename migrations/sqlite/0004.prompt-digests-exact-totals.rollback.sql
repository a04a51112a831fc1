-- Back to 0003's schema: prompts unique by text, generations referencing prompts (text), totals of seconds
-- as REAL sums (recounted from the rows), prompts_used_count (used_count).

CREATE TABLE prompts_old (
    id            INTEGER PRIMARY KEY,
    text          TEXT    NOT NULL UNIQUE CHECK (length(trim(text)) > 0),
    used_count    INTEGER NOT NULL DEFAULT 0 CHECK (used_count >= 0),
    first_used_at INTEGER NOT NULL,
    last_used_at  INTEGER NOT NULL CHECK (last_used_at >= first_used_at)
) STRICT;

INSERT INTO prompts_old (id, text, used_count, first_used_at, last_used_at)
SELECT id, text, used_count, first_used_at, last_used_at FROM prompts;

CREATE TABLE generations_old (
    id                      TEXT    PRIMARY KEY CHECK (length(id) = 36),
    prompt                  TEXT    NOT NULL REFERENCES prompts (text),
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
    CHECK (status <> 'processing' OR (worker_id IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CHECK (status <> 'completed' OR (file_path IS NOT NULL AND file_size_bytes IS NOT NULL))
) STRICT;

INSERT INTO generations_old (
    id, prompt, model_name, model_version, duration_seconds, sample_rate, channels, status, file_path,
    file_size_bytes, created_at, started_at, completed_at, generation_time_seconds, error_message, attempts,
    worker_id, lease_expires_at, metadata
)
SELECT id, prompt, model_name, model_version, duration_seconds, sample_rate, channels, status, file_path,
       file_size_bytes, created_at, started_at, completed_at, generation_time_seconds, error_message, attempts,
       worker_id, lease_expires_at, metadata
FROM generations;

DROP TABLE generations;
DROP TABLE prompts;
ALTER TABLE prompts_old RENAME TO prompts;
ALTER TABLE generations_old RENAME TO generations;

CREATE INDEX generations_status_created_at_id ON generations (status, created_at, id);
CREATE INDEX generations_created_at ON generations (created_at);
CREATE INDEX generations_file_path ON generations (file_path) WHERE file_path IS NOT NULL;
CREATE INDEX prompts_used_count ON prompts (used_count);

DROP TABLE generation_totals;

CREATE TABLE generation_totals (
    status             TEXT    PRIMARY KEY
        CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    generations        INTEGER NOT NULL DEFAULT 0,
    file_bytes         INTEGER NOT NULL DEFAULT 0,
    generation_seconds REAL    NOT NULL DEFAULT 0,
    audio_seconds      REAL    NOT NULL DEFAULT 0
) STRICT, WITHOUT ROWID;

INSERT INTO generation_totals (status)
VALUES ('pending'), ('processing'), ('completed'), ('failed'), ('cancelled');

UPDATE generation_totals
SET (generations, file_bytes, generation_seconds, audio_seconds) = (
    SELECT count(*),
           coalesce(sum(file_size_bytes), 0),
           coalesce(sum(generation_time_seconds), 0.0),
           coalesce(sum(duration_seconds), 0.0)
    FROM generations AS g
    WHERE g.status = generation_totals.status
);

UPDATE prompt_totals
SET prompts = (SELECT count(*) FROM prompts), uses = (SELECT coalesce(sum(used_count), 0) FROM prompts)
WHERE id = 1;

CREATE TRIGGER generations_count_insert AFTER INSERT ON generations
BEGIN
    UPDATE generation_totals
    SET generations = generations + 1,
        file_bytes = file_bytes + coalesce(NEW.file_size_bytes, 0),
        generation_seconds = generation_seconds + coalesce(NEW.generation_time_seconds, 0),
        audio_seconds = audio_seconds + NEW.duration_seconds
    WHERE status = NEW.status;
END;

CREATE TRIGGER generations_count_delete AFTER DELETE ON generations
BEGIN
    UPDATE generation_totals
    SET generations = generations - 1,
        file_bytes = file_bytes - coalesce(OLD.file_size_bytes, 0),
        generation_seconds = generation_seconds - coalesce(OLD.generation_time_seconds, 0),
        audio_seconds = audio_seconds - OLD.duration_seconds
    WHERE status = OLD.status;
END;

CREATE TRIGGER generations_count_update
AFTER UPDATE OF status, file_size_bytes, generation_time_seconds, duration_seconds ON generations
BEGIN
    UPDATE generation_totals
    SET generations = generations - 1,
        file_bytes = file_bytes - coalesce(OLD.file_size_bytes, 0),
        generation_seconds = generation_seconds - coalesce(OLD.generation_time_seconds, 0),
        audio_seconds = audio_seconds - OLD.duration_seconds
    WHERE status = OLD.status;
    UPDATE generation_totals
    SET generations = generations + 1,
        file_bytes = file_bytes + coalesce(NEW.file_size_bytes, 0),
        generation_seconds = generation_seconds + coalesce(NEW.generation_time_seconds, 0),
        audio_seconds = audio_seconds + NEW.duration_seconds
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
