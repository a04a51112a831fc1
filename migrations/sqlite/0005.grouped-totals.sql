-- Running totals by (model, status) and by UTC day of creation, kept by triggers in the writing transaction
-- like generation_totals, so that counts by model and storage figures by model and by day read a few rows
-- instead of grouping every generation. A key's row is created the first time a generation has it and stays
-- (at zero) when its last one goes; the queries skip zero rows. Filled here from the rows.

CREATE TABLE generation_model_totals (
    model_name  TEXT    NOT NULL,
    status      TEXT    NOT NULL
        CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled')),
    generations INTEGER NOT NULL DEFAULT 0 CHECK (generations >= 0),
    file_bytes  INTEGER NOT NULL DEFAULT 0 CHECK (file_bytes >= 0),
    PRIMARY KEY (model_name, status)
) STRICT, WITHOUT ROWID;

-- day: 'YYYY-MM-DD', the UTC day of created_at (integer microseconds since the epoch)
CREATE TABLE generation_day_totals (
    day         TEXT    NOT NULL PRIMARY KEY,
    generations INTEGER NOT NULL DEFAULT 0 CHECK (generations >= 0),
    file_bytes  INTEGER NOT NULL DEFAULT 0 CHECK (file_bytes >= 0)
) STRICT, WITHOUT ROWID;

INSERT INTO generation_model_totals (model_name, status, generations, file_bytes)
SELECT model_name, status, count(*), coalesce(sum(file_size_bytes), 0)
FROM generations
GROUP BY model_name, status;

INSERT INTO generation_day_totals (day, generations, file_bytes)
SELECT date(created_at / 1000000, 'unixepoch'), count(*), coalesce(sum(file_size_bytes), 0)
FROM generations
GROUP BY 1;

CREATE TRIGGER generations_model_totals_insert AFTER INSERT ON generations
BEGIN
    INSERT INTO generation_model_totals (model_name, status, generations, file_bytes)
    VALUES (NEW.model_name, NEW.status, 1, coalesce(NEW.file_size_bytes, 0))
    ON CONFLICT (model_name, status) DO UPDATE
    SET generations = generations + excluded.generations, file_bytes = file_bytes + excluded.file_bytes;
END;

CREATE TRIGGER generations_model_totals_delete AFTER DELETE ON generations
BEGIN
    UPDATE generation_model_totals
    SET generations = generations - 1, file_bytes = file_bytes - coalesce(OLD.file_size_bytes, 0)
    WHERE model_name = OLD.model_name AND status = OLD.status;
END;

CREATE TRIGGER generations_model_totals_update
AFTER UPDATE OF status, model_name, file_size_bytes ON generations
WHEN OLD.status IS NOT NEW.status OR OLD.model_name IS NOT NEW.model_name
    OR OLD.file_size_bytes IS NOT NEW.file_size_bytes
BEGIN
    UPDATE generation_model_totals
    SET generations = generations - 1, file_bytes = file_bytes - coalesce(OLD.file_size_bytes, 0)
    WHERE model_name = OLD.model_name AND status = OLD.status;
    INSERT INTO generation_model_totals (model_name, status, generations, file_bytes)
    VALUES (NEW.model_name, NEW.status, 1, coalesce(NEW.file_size_bytes, 0))
    ON CONFLICT (model_name, status) DO UPDATE
    SET generations = generations + excluded.generations, file_bytes = file_bytes + excluded.file_bytes;
END;

CREATE TRIGGER generations_day_totals_insert AFTER INSERT ON generations
BEGIN
    INSERT INTO generation_day_totals (day, generations, file_bytes)
    VALUES (date(NEW.created_at / 1000000, 'unixepoch'), 1, coalesce(NEW.file_size_bytes, 0))
    ON CONFLICT (day) DO UPDATE
    SET generations = generations + excluded.generations, file_bytes = file_bytes + excluded.file_bytes;
END;

CREATE TRIGGER generations_day_totals_delete AFTER DELETE ON generations
BEGIN
    UPDATE generation_day_totals
    SET generations = generations - 1, file_bytes = file_bytes - coalesce(OLD.file_size_bytes, 0)
    WHERE day = date(OLD.created_at / 1000000, 'unixepoch');
END;

CREATE TRIGGER generations_day_totals_update AFTER UPDATE OF created_at, file_size_bytes ON generations
WHEN OLD.created_at IS NOT NEW.created_at OR OLD.file_size_bytes IS NOT NEW.file_size_bytes
BEGIN
    UPDATE generation_day_totals
    SET generations = generations - 1, file_bytes = file_bytes - coalesce(OLD.file_size_bytes, 0)
    WHERE day = date(OLD.created_at / 1000000, 'unixepoch');
    INSERT INTO generation_day_totals (day, generations, file_bytes)
    VALUES (date(NEW.created_at / 1000000, 'unixepoch'), 1, coalesce(NEW.file_size_bytes, 0))
    ON CONFLICT (day) DO UPDATE
    SET generations = generations + excluded.generations, file_bytes = file_bytes + excluded.file_bytes;
END;
