-- The web dashboard's pages of generations (musicstore.web): newest first, keyset paging by
-- (created_at, id), an optional lower bound of creation time (a day's page), filters by status and model on
-- the indexes the library's own lists use. A prompt text search walks a bounded window of the time index
-- (dashboard_scan_end finds its far end), so that a rare text costs one window per page, not a table scan:
-- dashboard_search is in sql/<dialect>/dashboard.sql (its match of both cases differs by dialect).

-- name: dashboard_page(after, before_created_at, before_id, limit)
SELECT * FROM generations
WHERE created_at >= :after AND (created_at, id) < (:before_created_at, :before_id)
ORDER BY created_at DESC, id DESC
LIMIT :limit;

-- name: dashboard_page_by_status(status, after, before_created_at, before_id, limit)
SELECT * FROM generations
WHERE status = :status AND created_at >= :after AND (created_at, id) < (:before_created_at, :before_id)
ORDER BY created_at DESC, id DESC
LIMIT :limit;

-- name: dashboard_page_by_model(model_name, after, before_created_at, before_id, limit)
SELECT * FROM generations
WHERE model_name = :model_name AND created_at >= :after
  AND (created_at, id) < (:before_created_at, :before_id)
ORDER BY created_at DESC, id DESC
LIMIT :limit;

-- name: dashboard_page_by_status_and_model(status, model_name, after, before_created_at, before_id, limit)
SELECT * FROM generations
WHERE status = :status AND model_name = :model_name AND created_at >= :after
  AND (created_at, id) < (:before_created_at, :before_id)
ORDER BY created_at DESC, id DESC
LIMIT :limit;

-- name: dashboard_scan_end(after, before_created_at, before_id, offset)^
-- The row `offset` places below the cursor (the far end of a search window); none when fewer remain.
SELECT created_at, id FROM generations
WHERE created_at >= :after AND (created_at, id) < (:before_created_at, :before_id)
ORDER BY created_at DESC, id DESC
LIMIT 1 OFFSET :offset;

-- name: dashboard_recent_prompts(since, limit)
-- The prompts of the newest rows created since a time (at most limit): trending prompts.
SELECT prompt FROM generations
WHERE created_at >= :since
ORDER BY created_at DESC, id DESC
LIMIT :limit;
