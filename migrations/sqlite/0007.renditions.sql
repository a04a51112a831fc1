-- Renditions of a generation's master. settings: the canonical JSON of everything asked for (codec settings
-- and the loudness profile), so that (generation_id, format, settings) names one request. Loudness and true
-- peak are NULL for silence (no finite level). The decoded true peak never exceeds the profile's ceiling.

CREATE TABLE renditions (
    id               TEXT    PRIMARY KEY CHECK (length(id) = 36),
    generation_id    TEXT    NOT NULL REFERENCES generations (id) ON DELETE CASCADE,
    format           TEXT    NOT NULL CHECK (format IN ('mp3', 'opus', 'vorbis', 'flac', 'wav')),
    codec            TEXT    NOT NULL CHECK (length(codec) BETWEEN 1 AND 40),
    bitrate_mode     TEXT    CHECK (bitrate_mode IN ('constant', 'variable', 'average')),
    bitrate_kbps     INTEGER CHECK (bitrate_kbps > 0),
    quality          REAL    CHECK (quality >= 0),
    sample_rate      INTEGER NOT NULL CHECK (sample_rate BETWEEN 8000 AND 384000),
    channels         INTEGER NOT NULL CHECK (channels BETWEEN 1 AND 8),
    settings         TEXT    NOT NULL CHECK (json_valid(settings) AND json_type(settings) = 'object'),
    profile          TEXT    NOT NULL CHECK (length(profile) BETWEEN 1 AND 100),
    target_lufs      REAL    NOT NULL CHECK (target_lufs > -70 AND target_lufs <= 0),
    ceiling_dbtp     REAL    NOT NULL CHECK (ceiling_dbtp BETWEEN -20 AND 0),
    storage_key      TEXT    NOT NULL UNIQUE CHECK (length(storage_key) BETWEEN 1 AND 1024),
    file_size_bytes  INTEGER NOT NULL CHECK (file_size_bytes > 0),
    duration_seconds REAL    NOT NULL CHECK (duration_seconds >= 0 AND duration_seconds <= 86400),
    loudness_lufs    REAL    CHECK (loudness_lufs BETWEEN -1e300 AND 1e300),
    true_peak_dbtp   REAL    CHECK (true_peak_dbtp <= ceiling_dbtp AND true_peak_dbtp >= -1e300),
    loudness_status  TEXT    NOT NULL
        CHECK (loudness_status IN ('normalized', 'limited', 'target_missed', 'silent', 'too_quiet')),
    checksum         TEXT    NOT NULL CHECK (length(checksum) = 64 AND checksum NOT GLOB '*[^0-9a-f]*'),
    created_at       INTEGER NOT NULL,
    UNIQUE (generation_id, format, settings)
) STRICT;
