-- Where a generation's file lives (migration 0006): the root's storage URL, the key below it, its SHA-256.

-- name: record_storage(id, storage_url, storage_key, checksum)!
-- Record the file of a generation just completed (same transaction, after complete_generation); the key is
-- its file_path (maintenance finds the object by file_path).
UPDATE generations
SET storage_url = :storage_url,
    storage_key = :storage_key,
    checksum = :checksum
WHERE id = :id AND status = 'completed' AND file_path = :storage_key;

-- name: get_storage(id)^
-- A generation's status and where its file lives.
SELECT id, status, file_path, file_size_bytes, storage_url, storage_key, checksum
FROM generations WHERE id = :id;

-- name: storage_between(first_id, last_id)
-- Where the files of the generations with ids in [first_id, last_id] live (a page of copy_store), in id order.
SELECT id, storage_url, storage_key, checksum
FROM generations
WHERE id >= :first_id AND id <= :last_id
ORDER BY id;

-- name: import_storage(id, storage_url, storage_key, checksum)!
-- Set where a copied generation's file lives, unless the target row records it already.
UPDATE generations
SET storage_url = :storage_url,
    storage_key = :storage_key,
    checksum = :checksum
WHERE id = :id AND storage_url IS NULL AND checksum IS NULL;
