-- The dashboard's days: generations created per UTC day since a day, from the running totals by day
-- (migration 0005), in their primary key's order. The day is TEXT here, DATE on PostgreSQL.

-- name: dashboard_days(since)
SELECT day, generations FROM generation_day_totals WHERE day >= :since AND generations > 0 ORDER BY day;
