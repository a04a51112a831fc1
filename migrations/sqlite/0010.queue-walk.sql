-- Pending jobs in claim order across every lane (priority DESC, created_at, id): the claim's fast path walks
-- the first few ready ones to find the best lane without ranking them all.
CREATE INDEX generations_queue ON generations (priority DESC, created_at, id) WHERE status = 'pending';
