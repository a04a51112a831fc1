-- The dashboard's days: generations created per UTC day since a day, from the running totals by day
-- (migration 0005), summed over their shards in the primary key's order.

-- name: dashboard_days(since)
SELECT to_char(t.day, 'YYYY-MM-DD') AS day, CAST(sum(t.generations) AS BIGINT) AS generations
FROM generation_day_totals AS t
WHERE t.day >= CAST(:since AS DATE)
GROUP BY t.day
HAVING sum(t.generations) > 0
ORDER BY t.day;
