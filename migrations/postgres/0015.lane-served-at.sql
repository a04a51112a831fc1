-- When each keyed lane was last served (see 0015.lane-served-at.py): the epoch for a lane never served.
ALTER TABLE owner_lanes ADD COLUMN served_at timestamptz NOT NULL DEFAULT 'epoch';

UPDATE owner_lanes AS l
SET served_at = served.at
FROM (
    SELECT owner_key, max(started_at) AS at FROM generations
    WHERE owner_key IS NOT NULL AND started_at IS NOT NULL
    GROUP BY owner_key
) AS served
WHERE served.owner_key = l.owner_key;

-- The claim's order of lanes: the head's priority, the fewest processing, the longest since served, the
-- oldest head.
DROP INDEX owner_lanes_order;
CREATE INDEX owner_lanes_order ON owner_lanes (head_priority DESC, running, served_at, head_created_at, head_id)
    WHERE head_id IS NOT NULL;

-- The lane without a key: its last service is its latest started_at (one probe of the index's last entry).
CREATE INDEX generations_unkeyed_served ON generations (started_at)
    WHERE owner_key IS NULL AND started_at IS NOT NULL;

-- 0014's trigger function, with served_at set when a job of the lane becomes processing.
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
