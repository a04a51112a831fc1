-- Renditions of a generation's master: the same table as on SQLite, in PostgreSQL's types. settings: the
-- canonical JSON text of everything asked for (codec settings and the loudness profile), so that
-- (generation_id, format, settings) names one request. Loudness and true peak are NULL for silence.

CREATE TABLE renditions (
    id               TEXT             PRIMARY KEY CHECK (length(id) = 36),
    generation_id    TEXT             NOT NULL REFERENCES generations (id) ON DELETE CASCADE,
    format           TEXT             NOT NULL CHECK (format IN ('mp3', 'opus', 'vorbis', 'flac', 'wav')),
    codec            TEXT             NOT NULL CHECK (length(codec) BETWEEN 1 AND 40),
    bitrate_mode     TEXT             CHECK (bitrate_mode IN ('constant', 'variable', 'average')),
    bitrate_kbps     INTEGER          CHECK (bitrate_kbps > 0),
    quality          DOUBLE PRECISION CHECK (quality >= 0),
    sample_rate      INTEGER          NOT NULL CHECK (sample_rate BETWEEN 8000 AND 384000),
    channels         INTEGER          NOT NULL CHECK (channels BETWEEN 1 AND 8),
    settings         TEXT             NOT NULL CHECK (json_typeof(CAST(settings AS json)) = 'object'),
    profile          TEXT             NOT NULL CHECK (length(profile) BETWEEN 1 AND 100),
    target_lufs      DOUBLE PRECISION NOT NULL CHECK (target_lufs > -70 AND target_lufs <= 0),
    ceiling_dbtp     DOUBLE PRECISION NOT NULL CHECK (ceiling_dbtp BETWEEN -20 AND 0),
    storage_key      TEXT             NOT NULL UNIQUE CHECK (length(storage_key) BETWEEN 1 AND 1024),
    file_size_bytes  BIGINT           NOT NULL CHECK (file_size_bytes > 0),
    duration_seconds DOUBLE PRECISION NOT NULL CHECK (duration_seconds >= 0 AND duration_seconds <= 86400),
    loudness_lufs    DOUBLE PRECISION CHECK (loudness_lufs > '-Infinity' AND loudness_lufs < 'Infinity'),
    true_peak_dbtp   DOUBLE PRECISION CHECK (true_peak_dbtp <= ceiling_dbtp AND true_peak_dbtp > '-Infinity'),
    loudness_status  TEXT             NOT NULL
        CHECK (loudness_status IN ('normalized', 'limited', 'target_missed', 'silent', 'too_quiet')),
    checksum         TEXT             NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),
    created_at       TIMESTAMPTZ      NOT NULL,
    UNIQUE (generation_id, format, settings)
);
