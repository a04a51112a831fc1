DROP INDEX generations_failed_at;
