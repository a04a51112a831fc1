-- Running totals of the renditions (one row), kept by triggers in the writing transaction like
-- generation_totals, so that storage statistics read one row instead of summing the renditions table.
-- Filled here from the rows. A generation's delete cascades to its renditions (ON DELETE CASCADE), and
-- SQLite fires their delete triggers for those rows too.

CREATE TABLE rendition_totals (
    id         INTEGER NOT NULL PRIMARY KEY CHECK (id = 0),
    renditions INTEGER NOT NULL DEFAULT 0 CHECK (renditions >= 0),
    file_bytes INTEGER NOT NULL DEFAULT 0 CHECK (file_bytes >= 0)
) STRICT;

INSERT INTO rendition_totals (id, renditions, file_bytes)
SELECT 0, count(*), coalesce(sum(file_size_bytes), 0) FROM renditions;

CREATE TRIGGER renditions_totals_insert AFTER INSERT ON renditions
BEGIN
    UPDATE rendition_totals
    SET renditions = renditions + 1, file_bytes = file_bytes + NEW.file_size_bytes
    WHERE id = 0;
END;

CREATE TRIGGER renditions_totals_delete AFTER DELETE ON renditions
BEGIN
    UPDATE rendition_totals
    SET renditions = renditions - 1, file_bytes = file_bytes - OLD.file_size_bytes
    WHERE id = 0;
END;

CREATE TRIGGER renditions_totals_update AFTER UPDATE OF file_size_bytes ON renditions
WHEN OLD.file_size_bytes IS NOT NEW.file_size_bytes
BEGIN
    UPDATE rendition_totals
    SET file_bytes = file_bytes - OLD.file_size_bytes + NEW.file_size_bytes
    WHERE id = 0;
END;
