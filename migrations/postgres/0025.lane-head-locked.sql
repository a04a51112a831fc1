-- A lane's head recomputed from a snapshot taken once the lane's row is held: a cancel, a delete, a retry or
-- an expired lease of a keyed job that waited for an enqueue of the same lane (its transaction holding the
-- lane's row) wrote the head as it was before that enqueue committed, and the new job stayed pending and
-- unclaimable (claims read only lanes with a head) until the lane changed again. 0015's function, with the
-- lane's row locked before the head is read.
CREATE OR REPLACE FUNCTION musicstore_owner_lanes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.owner_key = OLD.owner_key AND OLD.status = 'processing'
       AND NEW.status NOT IN ('pending', 'processing') AND NEW.priority = OLD.priority THEN
        -- a running job finishes (completed, failed, cancelled): one fewer running, the head stays
        UPDATE owner_lanes SET running = running - 1 WHERE owner_key = OLD.owner_key;
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' AND OLD.owner_key IS NOT NULL AND OLD.status IN ('pending', 'processing') THEN
        -- the lane's row locked first (held already by a claim, which locks it before its job): the UPDATE
        -- below then reads the lane's pending jobs from a snapshot taken after any enqueue of the lane that
        -- held the row committed (one UPDATE alone waited for the row, then wrote the head it had read before)
        PERFORM 1 FROM owner_lanes WHERE owner_key = OLD.owner_key FOR UPDATE;
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
