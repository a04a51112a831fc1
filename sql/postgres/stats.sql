-- name: totals()
-- The running totals summed over their shards.
SELECT g.status,
       CAST(sum(g.generations) AS BIGINT) AS generations,
       CAST(sum(g.file_bytes) AS BIGINT) AS file_bytes,
       CAST(sum(g.generation_micros) AS BIGINT) AS generation_micros,
       CAST(sum(g.audio_micros) AS BIGINT) AS audio_micros,
       (SELECT CAST(sum(prompts) AS BIGINT) FROM prompt_totals) AS prompts,
       (SELECT CAST(sum(uses) AS BIGINT) FROM prompt_totals) AS uses
FROM generation_totals AS g
GROUP BY g.status;
