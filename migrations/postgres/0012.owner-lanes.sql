-- Each owner key's lane: its processing jobs (running) and its head, the first of its pending jobs in claim
-- order (priority DESC, created_at, id; whatever their run_after), kept by a trigger in the statement that
-- changes a row. Jobs without a key are not counted here. A row stays when its key has no job left.
CREATE TABLE owner_lanes (
    owner_key       text        PRIMARY KEY CHECK (length(owner_key) BETWEEN 1 AND 200),
    running         integer     NOT NULL CHECK (running >= 0),
    head_priority   integer,
    head_created_at timestamptz,
    head_id         text
);

-- The lanes with a pending job in the claim's order of lanes: the head's priority, the fewest processing,
-- the oldest head. A claim reads the first with room.
CREATE INDEX owner_lanes_order ON owner_lanes (head_priority DESC, running, head_created_at, head_id)
    WHERE head_id IS NOT NULL;

-- The claim no longer walks the pending jobs across lanes (0010): one index fewer to keep at each claim.
DROP INDEX generations_queue;

INSERT INTO owner_lanes (owner_key, running)
SELECT owner_key, count(*) FILTER (WHERE status = 'processing')
FROM generations
WHERE owner_key IS NOT NULL AND status IN ('pending', 'processing')
GROUP BY owner_key;

UPDATE owner_lanes AS l
SET (head_priority, head_created_at, head_id) = (
    SELECT g.priority, g.created_at, g.id FROM generations AS g
    WHERE coalesce(g.owner_key, '') = l.owner_key AND g.status = 'pending'
    ORDER BY g.priority DESC, g.created_at, g.id
    LIMIT 1
);

-- Out of the old key's lane, into the new key's: its running count, and its head where a pending job came or
-- went (one probe of generations_lane_queue). pending <-> processing within one key (a claim, a retry, a
-- requeue) is one UPDATE of the key's row, which exists: it counted the job.
CREATE FUNCTION musicstore_owner_lanes() RETURNS trigger LANGUAGE plpgsql AS $$
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
            (head_priority, head_created_at, head_id) = (
                SELECT g.priority, g.created_at, g.id FROM generations AS g
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
            SET (head_priority, head_created_at, head_id) = (
                SELECT g.priority, g.created_at, g.id FROM generations AS g
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

CREATE TRIGGER generations_lanes_insert
AFTER INSERT ON generations
FOR EACH ROW
WHEN (NEW.owner_key IS NOT NULL AND NEW.status IN ('pending', 'processing'))
EXECUTE FUNCTION musicstore_owner_lanes();

CREATE TRIGGER generations_lanes_update
AFTER UPDATE OF status, owner_key, priority ON generations
FOR EACH ROW
WHEN (
    (
        OLD.status IS DISTINCT FROM NEW.status OR OLD.owner_key IS DISTINCT FROM NEW.owner_key
        OR OLD.priority IS DISTINCT FROM NEW.priority
    )
    AND (
        (OLD.owner_key IS NOT NULL AND OLD.status IN ('pending', 'processing'))
        OR (NEW.owner_key IS NOT NULL AND NEW.status IN ('pending', 'processing'))
    )
)
EXECUTE FUNCTION musicstore_owner_lanes();

CREATE TRIGGER generations_lanes_delete
AFTER DELETE ON generations
FOR EACH ROW
WHEN (OLD.owner_key IS NOT NULL AND OLD.status IN ('pending', 'processing'))
EXECUTE FUNCTION musicstore_owner_lanes();
