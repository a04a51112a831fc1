-- Back to 0022: the totals' function of 0004, without the notification (a deleted job's waits find it gone at
-- their next periodic re-try).
CREATE OR REPLACE FUNCTION musicstore_count_generations() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    my_shard INTEGER := mod(pg_backend_pid(), 16);
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status = NEW.status THEN
        UPDATE generation_totals
        SET file_bytes = file_bytes + coalesce(NEW.file_size_bytes, 0) - coalesce(OLD.file_size_bytes, 0),
            generation_micros = generation_micros + coalesce(musicstore_micros(NEW.generation_time_seconds), 0)
                - coalesce(musicstore_micros(OLD.generation_time_seconds), 0),
            audio_micros = audio_micros + musicstore_micros(NEW.duration_seconds)
                - musicstore_micros(OLD.duration_seconds)
        WHERE status = NEW.status AND shard = my_shard;
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE generation_totals
        SET generations = generations - 1,
            file_bytes = file_bytes - coalesce(OLD.file_size_bytes, 0),
            generation_micros = generation_micros - coalesce(musicstore_micros(OLD.generation_time_seconds), 0),
            audio_micros = audio_micros - musicstore_micros(OLD.duration_seconds)
        WHERE status = OLD.status AND shard = my_shard;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        UPDATE generation_totals
        SET generations = generations + 1,
            file_bytes = file_bytes + coalesce(NEW.file_size_bytes, 0),
            generation_micros = generation_micros + coalesce(musicstore_micros(NEW.generation_time_seconds), 0),
            audio_micros = audio_micros + musicstore_micros(NEW.duration_seconds)
        WHERE status = NEW.status AND shard = my_shard;
    END IF;
    RETURN NULL;
END
$$;
