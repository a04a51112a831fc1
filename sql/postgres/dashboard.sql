-- The dashboard's days: generations created per UTC day since a day, from the running totals by day
-- (migration 0005), summed over their shards in the primary key's order.

-- name: dashboard_days(since)
SELECT to_char(t.day, 'YYYY-MM-DD') AS day, CAST(sum(t.generations) AS BIGINT) AS generations
FROM generation_day_totals AS t
WHERE t.day >= CAST(:since AS DATE)
GROUP BY t.day
HAVING sum(t.generations) > 0
ORDER BY t.day;

-- name: dashboard_search(pattern, regex, status, model_name, low_created_at, low_id, before_created_at, before_id, limit)
-- Rows of the window [(low_created_at, low_id), cursor) whose prompt matches the lower-case LIKE pattern
-- (escape character !), or for a text beyond ASCII the regular expression whose letters are classes of both
-- cases ([cC][aA][fF][éÉ]): lower() under the collation "C" folds ASCII letters only, as SQLite's does (the
-- server's locale, C.UTF-8 or en_US, lowers the Kelvin sign to k and İ to i); optionally of one status
-- and/or model.
SELECT * FROM generations
WHERE created_at >= :low_created_at AND (created_at, id) >= (:low_created_at, :low_id)
  AND (created_at, id) < (:before_created_at, :before_id)
  AND ((CAST(:regex AS TEXT) IS NULL AND lower(prompt COLLATE "C") LIKE :pattern ESCAPE '!')
       OR prompt ~ CAST(:regex AS TEXT))
  AND (CAST(:status AS TEXT) IS NULL OR status = :status)
  AND (CAST(:model_name AS TEXT) IS NULL OR model_name = :model_name)
ORDER BY created_at DESC, id DESC
LIMIT :limit;
