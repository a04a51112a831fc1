-- Each owner key's lane: its processing jobs (running) and its head, the first of its pending jobs in claim
-- order (priority DESC, created_at, id; whatever their run_after), kept by triggers in the statement that
-- changes a row. Jobs without a key are not counted here. A row stays when its key has no job left.
CREATE TABLE owner_lanes (
    owner_key       TEXT    PRIMARY KEY CHECK (length(owner_key) BETWEEN 1 AND 200),
    running         INTEGER NOT NULL CHECK (running >= 0),
    head_priority   INTEGER,
    head_created_at INTEGER,
    head_id         TEXT
) STRICT, WITHOUT ROWID;

-- The lanes with a pending job in the claim's order of lanes: the head's priority, the fewest processing,
-- the oldest head. A claim reads the first with room.
CREATE INDEX owner_lanes_order ON owner_lanes (head_priority DESC, running, head_created_at, head_id)
    WHERE head_id IS NOT NULL;

-- The claim no longer walks the pending jobs across lanes (0010): one index fewer to keep at each claim.
DROP INDEX generations_queue;

INSERT INTO owner_lanes (owner_key, running)
SELECT owner_key, sum(status = 'processing')
FROM generations
WHERE owner_key IS NOT NULL AND status IN ('pending', 'processing')
GROUP BY owner_key;

UPDATE owner_lanes
SET (head_priority, head_created_at, head_id) = (
    SELECT g.priority, g.created_at, g.id FROM generations AS g
    WHERE coalesce(g.owner_key, '') = coalesce(owner_lanes.owner_key, '') AND g.status = 'pending'
    ORDER BY g.priority DESC, g.created_at, g.id
    LIMIT 1
);

CREATE TRIGGER generations_lanes_insert AFTER INSERT ON generations
WHEN NEW.owner_key IS NOT NULL AND NEW.status IN ('pending', 'processing')
BEGIN
    INSERT INTO owner_lanes (owner_key, running) VALUES (NEW.owner_key, NEW.status = 'processing')
    ON CONFLICT (owner_key) DO UPDATE SET running = running + excluded.running;
    UPDATE owner_lanes
    SET (head_priority, head_created_at, head_id) = (
        SELECT g.priority, g.created_at, g.id FROM generations AS g
        WHERE coalesce(g.owner_key, '') = coalesce(NEW.owner_key, '') AND g.status = 'pending'
        ORDER BY g.priority DESC, g.created_at, g.id
        LIMIT 1
    )
    WHERE owner_key = NEW.owner_key AND NEW.status = 'pending';
END;

-- A claim, a retry, a requeue: pending <-> processing within one key (the row exists: it counted the job).
CREATE TRIGGER generations_lanes_move AFTER UPDATE OF status ON generations
WHEN OLD.owner_key IS NOT NULL AND NEW.owner_key IS OLD.owner_key AND NEW.status IS NOT OLD.status
    AND OLD.status IN ('pending', 'processing') AND NEW.status IN ('pending', 'processing')
    AND NEW.priority IS OLD.priority
BEGIN
    UPDATE owner_lanes
    SET running = running + (NEW.status = 'processing') - (OLD.status = 'processing'),
        (head_priority, head_created_at, head_id) = (
            SELECT g.priority, g.created_at, g.id FROM generations AS g
            WHERE coalesce(g.owner_key, '') = coalesce(NEW.owner_key, '') AND g.status = 'pending'
            ORDER BY g.priority DESC, g.created_at, g.id
            LIMIT 1
        )
    WHERE owner_key = NEW.owner_key;
END;

-- A running job finishes (completed, failed, cancelled): one fewer running, the head stays.
CREATE TRIGGER generations_lanes_finish AFTER UPDATE OF status ON generations
WHEN OLD.owner_key IS NOT NULL AND NEW.owner_key IS OLD.owner_key AND OLD.status = 'processing'
    AND NEW.status NOT IN ('pending', 'processing') AND NEW.priority IS OLD.priority
BEGIN
    UPDATE owner_lanes SET running = running - 1 WHERE owner_key = OLD.owner_key;
END;

-- Any other change of status, key or priority that a lane sees: out of the old key's lane, into the new's.
CREATE TRIGGER generations_lanes_update AFTER UPDATE OF status, owner_key, priority ON generations
WHEN (NEW.status IS NOT OLD.status OR NEW.owner_key IS NOT OLD.owner_key OR NEW.priority IS NOT OLD.priority)
    AND NOT (
        OLD.owner_key IS NOT NULL AND NEW.owner_key IS OLD.owner_key AND NEW.status IS NOT OLD.status
        AND OLD.status IN ('pending', 'processing') AND NEW.status IN ('pending', 'processing')
        AND NEW.priority IS OLD.priority
    )
    AND NOT (
        OLD.owner_key IS NOT NULL AND NEW.owner_key IS OLD.owner_key AND OLD.status = 'processing'
        AND NEW.status NOT IN ('pending', 'processing') AND NEW.priority IS OLD.priority
    )
    AND (
        (OLD.owner_key IS NOT NULL AND OLD.status IN ('pending', 'processing'))
        OR (NEW.owner_key IS NOT NULL AND NEW.status IN ('pending', 'processing'))
    )
BEGIN
    UPDATE owner_lanes SET running = running - (OLD.status = 'processing')
    WHERE owner_key = OLD.owner_key AND OLD.status IN ('pending', 'processing');
    INSERT INTO owner_lanes (owner_key, running)
    SELECT NEW.owner_key, NEW.status = 'processing'
    WHERE NEW.owner_key IS NOT NULL AND NEW.status IN ('pending', 'processing')
    ON CONFLICT (owner_key) DO UPDATE SET running = running + excluded.running;
    UPDATE owner_lanes
    SET (head_priority, head_created_at, head_id) = (
        SELECT g.priority, g.created_at, g.id FROM generations AS g
        WHERE coalesce(g.owner_key, '') = coalesce(owner_lanes.owner_key, '') AND g.status = 'pending'
        ORDER BY g.priority DESC, g.created_at, g.id
        LIMIT 1
    )
    WHERE (owner_key = OLD.owner_key AND OLD.status = 'pending')
       OR (owner_key = NEW.owner_key AND NEW.status = 'pending');
END;

CREATE TRIGGER generations_lanes_delete AFTER DELETE ON generations
WHEN OLD.owner_key IS NOT NULL AND OLD.status IN ('pending', 'processing')
BEGIN
    UPDATE owner_lanes
    SET running = running - (OLD.status = 'processing'),
        (head_priority, head_created_at, head_id) = (
            SELECT g.priority, g.created_at, g.id FROM generations AS g
            WHERE coalesce(g.owner_key, '') = coalesce(OLD.owner_key, '') AND g.status = 'pending'
            ORDER BY g.priority DESC, g.created_at, g.id
            LIMIT 1
        )
    WHERE owner_key = OLD.owner_key;
END;
