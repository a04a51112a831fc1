-- Prompts: each distinct prompt text once, with how often and when it was used.

-- name: track_prompt(text, now)^
-- Count one use of a prompt, inserting it on first use (atomic upsert). Concurrent writers' clocks may
-- disagree by a little, so last_used_at only moves forward.
INSERT INTO prompts (text, used_count, first_used_at, last_used_at)
VALUES (:text, 1, :now, :now)
ON CONFLICT (text) DO UPDATE
SET used_count = prompts.used_count + 1,
    last_used_at = CASE WHEN excluded.last_used_at > prompts.last_used_at
                        THEN excluded.last_used_at ELSE prompts.last_used_at END
RETURNING id, text, used_count, first_used_at, last_used_at;

-- name: get_prompt_by_text(text)^
SELECT id, text, used_count, first_used_at, last_used_at FROM prompts WHERE text = :text;

-- name: most_used_prompts(limit)
SELECT id, text, used_count, first_used_at, last_used_at
FROM prompts
ORDER BY used_count DESC, id
LIMIT :limit;

-- name: delete_all_prompts()!
DELETE FROM prompts;
