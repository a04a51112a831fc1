-- Prompts: each distinct prompt text once, with how often and when it was used. A prompt is found by its
-- digest (SHA-256 of the UTF-8 text, computed by the library; the unique index) and its text compared too,
-- so a prompt of any length and content is one short index entry.

-- name: track_prompt(digest, text, now)^
-- Count one use of a prompt, inserting it on first use (atomic upsert). Concurrent writers' clocks may
-- disagree by a little, so last_used_at only moves forward and first_used_at only back (the earliest use
-- seen). Returns no row if another text has the digest.
INSERT INTO prompts (digest, text, used_count, first_used_at, last_used_at)
VALUES (:digest, :text, 1, :now, :now)
ON CONFLICT (digest) DO UPDATE
SET used_count = prompts.used_count + 1,
    first_used_at = CASE WHEN excluded.first_used_at < prompts.first_used_at
                         THEN excluded.first_used_at ELSE prompts.first_used_at END,
    last_used_at = CASE WHEN excluded.last_used_at > prompts.last_used_at
                        THEN excluded.last_used_at ELSE prompts.last_used_at END
WHERE prompts.text = excluded.text
RETURNING id, text, used_count, first_used_at, last_used_at;

-- name: get_prompt_by_text(digest, text)^
SELECT id, text, used_count, first_used_at, last_used_at FROM prompts WHERE digest = :digest AND text = :text;

-- name: most_used_prompts(limit)
-- Read in the order of the index prompts_used_count_id (used_count DESC, id): no sort, at any size.
SELECT id, text, used_count, first_used_at, last_used_at
FROM prompts
ORDER BY used_count DESC, id
LIMIT :limit;

-- name: delete_all_prompts()!
DELETE FROM prompts;
