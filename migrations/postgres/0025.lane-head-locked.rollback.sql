-- Back to 0015: the head recomputed by one UPDATE (its snapshot taken before it waited for the lane's row).
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
            served_at = CASE WHEN TG_OP = 'UPDATE' AND NEW.owner_key = OLD.owner_key
                                  AND NEW.status = 'processing' AND OLD.status = 'pending'
                             THEN coalesce(NEW.started_at, l.served_at) ELSE l.served_at END,
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
        INSERT INTO owner_lanes AS l (owner_key, running, served_at)
        VALUES (
            NEW.owner_key, (NEW.status = 'processing')::int,
            CASE WHEN NEW.status = 'processing' AND (TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM 'processing')
                 THEN coalesce(NEW.started_at, timestamptz 'epoch') ELSE timestamptz 'epoch' END
        )
        ON CONFLICT (owner_key) DO UPDATE SET running = l.running + excluded.running,
                                              served_at = greatest(l.served_at, excluded.served_at);
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
