-- Progress of a running generation: the fraction done, a short stage label and when the worker wrote them.
-- NULL until a worker reports.

ALTER TABLE generations
    ADD COLUMN progress DOUBLE PRECISION CHECK (progress BETWEEN 0 AND 1),
    ADD COLUMN stage TEXT CHECK (length(stage) BETWEEN 1 AND 64),
    ADD COLUMN progress_at TIMESTAMPTZ;

-- Throughput for a queue position's ETA: completions since a moment, counted in this index.
CREATE INDEX generations_completed_at ON generations (completed_at) WHERE status = 'completed';

-- Wake-ups, sent in the writing transaction (delivered at its commit; the same notification twice in one
-- transaction is delivered once): musicstore_pending when a row becomes pending (enqueue, retry, requeue,
-- replay), musicstore_finished with the id when a row becomes completed, failed or cancelled.
CREATE FUNCTION musicstore_notify_pending() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('musicstore_pending', '');
    RETURN NULL;
END
$$;

CREATE FUNCTION musicstore_notify_finished() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('musicstore_finished', NEW.id);
    RETURN NULL;
END
$$;

CREATE TRIGGER generations_notify_insert
AFTER INSERT ON generations
FOR EACH STATEMENT EXECUTE FUNCTION musicstore_notify_pending();

CREATE TRIGGER generations_notify_pending
AFTER UPDATE OF status ON generations
FOR EACH ROW
WHEN (NEW.status = 'pending' AND OLD.status IS DISTINCT FROM NEW.status)
EXECUTE FUNCTION musicstore_notify_pending();

CREATE TRIGGER generations_notify_finished
AFTER UPDATE OF status ON generations
FOR EACH ROW
WHEN (NEW.status IN ('completed', 'failed', 'cancelled') AND OLD.status IS DISTINCT FROM NEW.status)
EXECUTE FUNCTION musicstore_notify_finished();
