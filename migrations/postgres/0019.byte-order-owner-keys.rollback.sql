-- Back to the database's default collation (indexes rebuilt in its order; the lanes' triggers made again).
ALTER TABLE owner_lanes ALTER COLUMN owner_key TYPE text COLLATE "default";
ALTER TABLE owner_limits ALTER COLUMN owner_key TYPE text COLLATE "default";
DO $$
DECLARE
    definitions text[];
    names text[];
    definition text;
    i integer;
BEGIN
    SELECT coalesce(array_agg(pg_get_triggerdef(t.oid) ORDER BY t.tgname), '{}'),
           coalesce(array_agg(t.tgname::text ORDER BY t.tgname), '{}')
    INTO definitions, names
    FROM pg_trigger AS t
    WHERE t.tgrelid = 'generations'::regclass AND NOT t.tgisinternal
      AND EXISTS (
          SELECT 1 FROM pg_depend AS d JOIN pg_attribute AS a
            ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
          WHERE d.classid = 'pg_trigger'::regclass AND d.objid = t.oid
            AND d.refobjid = 'generations'::regclass AND a.attname = 'owner_key'
      );
    FOR i IN 1 .. coalesce(array_length(names, 1), 0) LOOP
        EXECUTE format('DROP TRIGGER %I ON generations', names[i]);
    END LOOP;
    ALTER TABLE generations ALTER COLUMN owner_key TYPE text COLLATE "default";
    FOREACH definition IN ARRAY definitions LOOP
        EXECUTE definition;
    END LOOP;
END
$$;
