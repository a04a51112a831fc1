-- Back to one row (id 1) holding the sum of the shards, and the trigger that updates it.
LOCK TABLE prompts, prompt_totals IN SHARE ROW EXCLUSIVE MODE;

UPDATE prompt_totals
SET prompts = (SELECT sum(prompts) FROM prompt_totals), uses = (SELECT sum(uses) FROM prompt_totals)
WHERE id = 1;
DELETE FROM prompt_totals WHERE id <> 1;

ALTER TABLE prompt_totals DROP CONSTRAINT prompt_totals_id_check;
ALTER TABLE prompt_totals ADD CONSTRAINT prompt_totals_id_check CHECK (id = 1);

CREATE OR REPLACE FUNCTION musicstore_count_prompts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE prompt_totals SET prompts = prompts + 1, uses = uses + NEW.used_count WHERE id = 1;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE prompt_totals SET prompts = prompts - 1, uses = uses - OLD.used_count WHERE id = 1;
    ELSE
        UPDATE prompt_totals SET uses = uses + NEW.used_count - OLD.used_count WHERE id = 1;
    END IF;
    RETURN NULL;
END
$$;
