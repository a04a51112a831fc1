-- Back to 0009: no index of pending jobs across lanes (claims rank every lane).
DROP INDEX generations_queue;
