-- Back to 0014: lanes tied on priority and running jobs rank by their head's age alone.
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

DROP INDEX generations_unkeyed_served;
DROP INDEX owner_lanes_order;
CREATE INDEX owner_lanes_order ON owner_lanes (head_priority DESC, running, head_created_at, head_id)
    WHERE head_id IS NOT NULL;
ALTER TABLE owner_lanes DROP COLUMN served_at;
