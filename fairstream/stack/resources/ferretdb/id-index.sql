-- Index `_id` lookups of FerretDB 1.x on its PostgreSQL backend.
--
-- FerretDB pushes an `_id` equality filter down as `_jsonb -> '_id' @> <value>`, which
-- its own btree index on `(_jsonb -> '_id')` cannot serve: every find, update and upsert
-- by `_id` scanned the whole table (4.8 ms at 2,000 campaign documents, growing with the
-- collection). A GIN index on the same expression serves `@>`. FerretDB keeps its own
-- index list in its metadata table, so it never sees or drops this one; it goes with the
-- table. The event trigger adds it to every table FerretDB creates; the DO block to the
-- tables that exist already.
CREATE OR REPLACE FUNCTION public.fairstream_ferretdb_id_index(target regclass)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    rel record;
BEGIN
    SELECT c.relname, n.nspname INTO rel
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = target;
    IF rel.relname LIKE '\_ferretdb\_%' OR NOT EXISTS (
        SELECT 1 FROM pg_attribute
        WHERE attrelid = target AND attname = '_jsonb' AND NOT attisdropped
    ) THEN
        RETURN;
    END IF;
    EXECUTE format(
        'CREATE INDEX IF NOT EXISTS %I ON %I.%I USING gin ((_jsonb -> ''_id'') jsonb_path_ops)',
        left(rel.relname, 50) || '_fs_id_gin', rel.nspname, rel.relname
    );
END
$$;

CREATE OR REPLACE FUNCTION public.fairstream_ferretdb_id_index_trigger()
RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE
    cmd record;
BEGIN
    FOR cmd IN
        SELECT objid FROM pg_event_trigger_ddl_commands()
        WHERE command_tag = 'CREATE TABLE' AND object_type = 'table'
    LOOP
        PERFORM public.fairstream_ferretdb_id_index(cmd.objid::regclass);
    END LOOP;
END
$$;

DROP EVENT TRIGGER IF EXISTS fairstream_ferretdb_id_index;
CREATE EVENT TRIGGER fairstream_ferretdb_id_index ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE')
    EXECUTE FUNCTION public.fairstream_ferretdb_id_index_trigger();

DO $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    LOOP
        PERFORM public.fairstream_ferretdb_id_index(t.oid::regclass);
    END LOOP;
END
$$;
