-- name: totals()
-- The running totals summed over their shards.
SELECT g.status,
       CAST(sum(g.generations) AS BIGINT) AS generations,
       CAST(sum(g.file_bytes) AS BIGINT) AS file_bytes,
       CAST(sum(g.generation_micros) AS BIGINT) AS generation_micros,
       CAST(sum(g.audio_micros) AS BIGINT) AS audio_micros,
       min(p.prompts) AS prompts,
       min(p.uses) AS uses
FROM generation_totals AS g CROSS JOIN prompt_totals AS p
GROUP BY g.status;
