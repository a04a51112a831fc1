"""Renditions: a request's settings key writes numbers equal as values alike, and rows that were one request
under two keys become one row.

``renditions.settings`` (the key of ``UNIQUE (generation_id, format, settings)``) was the JSON of the
settings as given: ``quality`` 5 and 5.0, a ``target_lufs`` or ``ceiling_dbtp`` of 0.0 and -0.0, an extra
setting 5 and 5.0 were different keys, so one rendition could be recorded twice and a lookup missed the row
made for an equal request. The key now writes ``quality``, ``target_lufs`` and ``ceiling_dbtp`` as floats
and every other number equal to an integer as that integer (``musicstore.ops.renditions.canonical_settings``).
This step rewrites each row's key so; where two or more rows of a generation and format now have one key,
the oldest (``created_at``, then ``id``) is kept and the others are deleted. A deleted row's file stays in
its store, an orphan that reconcile reports (and quarantines, or deletes with ``delete_orphans=True``); the
rendition totals (0011) follow the deletes. The zero columns (``quality``, ``target_lufs``, ``ceiling_dbtp``)
holding -0.0 (PostgreSQL) become 0.0. The rows' key columns are read once. Both backends: the same step; the
statements are each dialect's, in sqlite/ or postgres/ beside this file. The rollback changes nothing: the
canonical keys are keys the version before reads, and a deleted duplicate is not restored.
"""

from typing import Any

from yoyo import step

from musicstore.migrate import dialect_queries
from musicstore.ops.renditions import canonical_settings, settings_json

__depends__ = {"0017.byte-order-keys"}


def apply_step(conn: Any) -> None:
    import json

    queries = dialect_queries(__file__, conn)
    cursor = conn.cursor()
    try:
        cursor.execute(queries["rendition_keys"])
        kept: set[tuple[str, str, str]] = set()
        duplicates: list[str] = []
        rewritten: list[tuple[str, str]] = []
        for rendition_id, generation_id, fmt, settings in cursor.fetchall():
            canonical = settings_json(canonical_settings(json.loads(settings)))
            key = (generation_id, fmt, canonical)
            if key in kept:  # a later row of the same request: its file is left for reconcile
                duplicates.append(rendition_id)
                continue
            kept.add(key)
            if canonical != settings:
                rewritten.append((rendition_id, canonical))
        for rendition_id in duplicates:  # first: a kept row's new key may be a duplicate's old one
            cursor.execute(queries["delete_rendition"], {"id": rendition_id})
        for rendition_id, canonical in rewritten:
            cursor.execute(queries["set_settings"], {"id": rendition_id, "settings": canonical})
        cursor.execute(queries["zero_levels"])
    finally:
        cursor.close()


def rollback_step(conn: Any) -> None:
    """Nothing: the version before reads canonical keys as they are; merged rows are not restored."""


steps = [step(apply_step, rollback_step)]
