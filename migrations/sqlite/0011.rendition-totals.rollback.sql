-- Back to 0010: no running totals of the renditions (storage statistics count the generations only).

DROP TRIGGER renditions_totals_update;
DROP TRIGGER renditions_totals_delete;
DROP TRIGGER renditions_totals_insert;
DROP TABLE rendition_totals;
