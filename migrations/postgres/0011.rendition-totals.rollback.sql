-- Back to 0010: no running totals of the renditions (storage statistics count the generations only).

DROP TRIGGER renditions_totals_update ON renditions;
DROP TRIGGER renditions_totals ON renditions;
DROP FUNCTION musicstore_count_renditions();
DROP TABLE rendition_totals;
