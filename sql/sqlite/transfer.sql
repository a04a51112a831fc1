-- Moving rows between stores: what the target already holds that a copied row would clash with.

-- name: transfer_idempotency_keys_held(keys)
-- The generations holding one of these idempotency keys (a JSON array), by the unique (partial) index.
SELECT id, idempotency_key FROM generations
WHERE idempotency_key IS NOT NULL AND idempotency_key IN (SELECT value FROM json_each(:keys));

-- name: transfer_renditions_held(keys, ids)
-- The renditions at one of these storage keys or of one of these generations (JSON arrays), by their
-- unique indexes (a rendition found by both comes twice): what a copied rendition of another id would clash
-- with.
SELECT id, generation_id, format, settings, storage_key FROM renditions
WHERE storage_key IN (SELECT value FROM json_each(:keys))
UNION ALL
SELECT id, generation_id, format, settings, storage_key FROM renditions
WHERE generation_id IN (SELECT value FROM json_each(:ids));

-- name: import_lane_served(owner_key, served_at)!
-- A copied lane's last service: its row made (no job running, no head: the triggers keep those from the
-- copied generations), or its time kept where the target's is later.
INSERT INTO owner_lanes (owner_key, running, served_at) VALUES (:owner_key, 0, :served_at)
ON CONFLICT (owner_key) DO UPDATE SET served_at = max(owner_lanes.served_at, excluded.served_at);
