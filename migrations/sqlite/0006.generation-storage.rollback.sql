-- Back to 0005: the file's place is file_path under the output root again.

ALTER TABLE generations DROP COLUMN checksum;
ALTER TABLE generations DROP COLUMN storage_key;
ALTER TABLE generations DROP COLUMN storage_url;
