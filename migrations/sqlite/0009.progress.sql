-- Progress of a running generation: the fraction done, a short stage label and when the worker wrote them
-- (integer microseconds since the epoch, UTC). NULL until a worker reports.

ALTER TABLE generations ADD COLUMN progress REAL CHECK (progress BETWEEN 0 AND 1);
ALTER TABLE generations ADD COLUMN stage TEXT CHECK (length(stage) BETWEEN 1 AND 64);
ALTER TABLE generations ADD COLUMN progress_at INTEGER;

-- Throughput for a queue position's ETA: completions since a moment, counted in this index.
CREATE INDEX generations_completed_at ON generations (completed_at) WHERE status = 'completed';
