-- Statistics from the running totals that triggers keep: no table scan at any size.

-- name: totals()
SELECT g.status, g.generations, g.file_bytes, g.generation_seconds, g.audio_seconds,
       p.prompts, p.uses
FROM generation_totals AS g CROSS JOIN prompt_totals AS p;
