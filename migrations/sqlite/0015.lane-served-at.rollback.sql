-- Back to 0014: lanes tied on priority and running jobs rank by their head's age alone.
DROP INDEX generations_unkeyed_served;
DROP INDEX owner_lanes_order;
CREATE INDEX owner_lanes_order ON owner_lanes (head_priority DESC, running, head_created_at, head_id)
    WHERE head_id IS NOT NULL;
DROP TRIGGER generations_lanes_insert;
DROP TRIGGER generations_lanes_move;
DROP TRIGGER generations_lanes_update;

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

ALTER TABLE owner_lanes DROP COLUMN served_at;
