-- Back to 0005's triggers (the day by truncating division), and the days up to 1970-01-01 recounted the way
-- they bucket, so that their delete and update find each row on the day its insert counted it.

DROP TRIGGER generations_day_totals_insert;
DROP TRIGGER generations_day_totals_delete;
DROP TRIGGER generations_day_totals_update;

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

DELETE FROM generation_day_totals WHERE day <= '1970-01-01';

INSERT INTO generation_day_totals (day, generations, file_bytes)
SELECT date(created_at / 1000000, 'unixepoch'), count(*), coalesce(sum(file_size_bytes), 0)
FROM generations
WHERE created_at < 86400000000
GROUP BY 1;
