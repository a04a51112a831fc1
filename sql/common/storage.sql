-- Where a generation's file lives (migration 0006): the root's storage URL, the key below it, its SHA-256.

-- name: record_storage(id, storage_url, storage_key, checksum)!
-- Record the file of a generation just completed (same transaction, after complete_generation).
UPDATE generations
SET storage_url = :storage_url,
    storage_key = :storage_key,
    checksum = :checksum
WHERE id = :id AND status = 'completed';

-- name: get_storage(id)^
-- A generation's status and where its file lives.
SELECT id, status, file_path, file_size_bytes, storage_url, storage_key, checksum
FROM generations WHERE id = :id;
