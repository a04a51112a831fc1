-- When each keyed lane was last served (see 0015.lane-served-at.py): 0 (the epoch) for a lane never served.
ALTER TABLE owner_lanes ADD COLUMN served_at INTEGER NOT NULL DEFAULT 0;

UPDATE owner_lanes
SET served_at = served.at
FROM (
    SELECT owner_key, max(started_at) AS at FROM generations
    WHERE owner_key IS NOT NULL AND started_at IS NOT NULL
    GROUP BY owner_key
) AS served
WHERE served.owner_key = owner_lanes.owner_key;

-- The claim's order of lanes: the head's priority, the fewest processing, the longest since served, the
-- oldest head.
DROP INDEX owner_lanes_order;
CREATE INDEX owner_lanes_order ON owner_lanes (head_priority DESC, running, served_at, head_created_at, head_id)
    WHERE head_id IS NOT NULL;

-- The lane without a key: its last service is its latest started_at (one probe of the index's last entry).
CREATE INDEX generations_unkeyed_served ON generations (started_at)
    WHERE owner_key IS NULL AND started_at IS NOT NULL;

-- 0012's triggers, with served_at set when a job of the lane becomes processing.
DROP TRIGGER generations_lanes_insert;
DROP TRIGGER generations_lanes_move;
DROP TRIGGER generations_lanes_update;

CREATE TRIGGER generations_lanes_insert AFTER INSERT ON generations
WHEN NEW.owner_key IS NOT NULL AND NEW.status IN ('pending', 'processing')
BEGIN
    INSERT INTO owner_lanes (owner_key, running, served_at)
    VALUES (
        NEW.owner_key, NEW.status = 'processing',
        CASE WHEN NEW.status = 'processing' THEN coalesce(NEW.started_at, 0) ELSE 0 END
    )
    ON CONFLICT (owner_key) DO UPDATE SET running = running + excluded.running,
                                          served_at = max(served_at, excluded.served_at);
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
        served_at = CASE WHEN NEW.status = 'processing' THEN coalesce(NEW.started_at, served_at)
                         ELSE served_at END,
        (head_priority, head_created_at, head_id) = (
            SELECT g.priority, g.created_at, g.id FROM generations AS g
            WHERE coalesce(g.owner_key, '') = coalesce(NEW.owner_key, '') AND g.status = 'pending'
            ORDER BY g.priority DESC, g.created_at, g.id
            LIMIT 1
        )
    WHERE owner_key = NEW.owner_key;
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
    INSERT INTO owner_lanes (owner_key, running, served_at)
    SELECT NEW.owner_key, NEW.status = 'processing',
           CASE WHEN NEW.status = 'processing' AND OLD.status IS NOT 'processing'
                THEN coalesce(NEW.started_at, 0) ELSE 0 END
    WHERE NEW.owner_key IS NOT NULL AND NEW.status IN ('pending', 'processing')
    ON CONFLICT (owner_key) DO UPDATE SET running = running + excluded.running,
                                          served_at = max(served_at, excluded.served_at);
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
