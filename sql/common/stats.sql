-- Statistics from the running totals that triggers keep: no table scan at any size. Seconds are kept as
-- integer microseconds (each row's value rounded), so the totals equal a recount of the rows.

-- name: totals()
SELECT g.status, g.generations, g.file_bytes, g.generation_micros, g.audio_micros,
       p.prompts, p.uses
FROM generation_totals AS g CROSS JOIN prompt_totals AS p;
