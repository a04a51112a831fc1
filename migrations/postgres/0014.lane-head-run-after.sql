-- The head's run_after beside the head (see 0014.lane-head-run-after.py): claim_fast reads whether the lane's
-- head waits from the lane's row, without a probe of the head's row.
ALTER TABLE owner_lanes ADD COLUMN head_run_after timestamptz;

UPDATE owner_lanes AS l
SET head_run_after = (SELECT g.run_after FROM generations AS g WHERE g.id = l.head_id)
WHERE l.head_id IS NOT NULL;

-- 0012's trigger function, keeping head_run_after with the head (the same probe of generations_lane_queue).
CREATE OR REPLACE FUNCTION musicstore_owner_lanes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.owner_key = OLD.owner_key AND OLD.status = 'processing'
       AND NEW.status NOT IN ('pending', 'processing') AND NEW.priority = OLD.priority THEN
        -- a running job finishes (completed, failed, cancelled): one fewer running, the head stays
        UPDATE owner_lanes SET running = running - 1 WHERE owner_key = OLD.owner_key;
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' AND OLD.owner_key IS NOT NULL AND OLD.status IN ('pending', 'processing') THEN
        UPDATE owner_lanes AS l
        SET running = l.running - (OLD.status = 'processing')::int
                    + (TG_OP = 'UPDATE' AND NEW.owner_key = OLD.owner_key AND NEW.status = 'processing')::int,
            (head_priority, head_created_at, head_id, head_run_after) = (
                SELECT g.priority, g.created_at, g.id, g.run_after FROM generations AS g
                WHERE coalesce(g.owner_key, '') = l.owner_key AND g.status = 'pending'
                ORDER BY g.priority DESC, g.created_at, g.id
                LIMIT 1
            )
        WHERE l.owner_key = OLD.owner_key;
        IF TG_OP = 'UPDATE' AND NEW.owner_key = OLD.owner_key THEN
            RETURN NULL;  -- the same lane: its count and head are up to date
        END IF;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.owner_key IS NOT NULL AND NEW.status IN ('pending', 'processing') THEN
        INSERT INTO owner_lanes AS l (owner_key, running)
        VALUES (NEW.owner_key, (NEW.status = 'processing')::int)
        ON CONFLICT (owner_key) DO UPDATE SET running = l.running + excluded.running;
        IF NEW.status = 'pending' THEN
            UPDATE owner_lanes AS l
            SET (head_priority, head_created_at, head_id, head_run_after) = (
                SELECT g.priority, g.created_at, g.id, g.run_after FROM generations AS g
                WHERE coalesce(g.owner_key, '') = l.owner_key AND g.status = 'pending'
                ORDER BY g.priority DESC, g.created_at, g.id
                LIMIT 1
            )
            WHERE l.owner_key = NEW.owner_key;
        END IF;
    END IF;
    RETURN NULL;
END
$$;

-- A pending job's run_after changed alone (no statement of the library does: a retry or requeue changes its
-- status too) moves its lane's head as a change of its priority does.
DROP TRIGGER generations_lanes_update ON generations;

CREATE TRIGGER generations_lanes_update
AFTER UPDATE OF status, owner_key, priority, run_after ON generations
FOR EACH ROW
WHEN (
    (
        OLD.status IS DISTINCT FROM NEW.status OR OLD.owner_key IS DISTINCT FROM NEW.owner_key
        OR OLD.priority IS DISTINCT FROM NEW.priority OR OLD.run_after IS DISTINCT FROM NEW.run_after
    )
    AND (
        (OLD.owner_key IS NOT NULL AND OLD.status IN ('pending', 'processing'))
        OR (NEW.owner_key IS NOT NULL AND NEW.status IN ('pending', 'processing'))
    )
)
EXECUTE FUNCTION musicstore_owner_lanes();
