-- Back to 0002's indexes.
DROP INDEX generations_file_path;
DROP INDEX generations_status_created_at_id;
CREATE INDEX generations_status_created_at ON generations (status, created_at);
