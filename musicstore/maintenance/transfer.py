"""Copy every row of one store into another: how an installation moves from SQLite to PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

from .. import ops, validate
from ..store import Store


def copy_store(
    source: Store, target: Store, *, batch: int = 1000, progress: Callable[[int], None] | None = None
) -> int:
    """Copy all prompts, then all generations, from ``source`` to ``target``; returns generations copied.

    Rows keep their ids, statuses, timestamps and metadata; each batch is one transaction on the target. It is
    idempotent: rerun after an interruption, rows already copied are skipped (a prompt keeps the larger usage
    count). Stop the workers first, or generations that change meanwhile are copied as they were when read.
    """
    batch = validate.integer(batch, "batch", 1)  # 0 would copy nothing and report success
    after_prompt = 0
    while prompts := source.run(ops.prompts_after, after_prompt, batch):
        target.run(ops.import_rows, prompts, [])
        after_prompt = prompts[-1].id
    copied, after_id = 0, ""
    while generations := source.run(ops.generations_after, after_id, batch):
        copied += target.run(ops.import_rows, [], generations)
        after_id = generations[-1].id
        if progress is not None:
            progress(copied)
    return copied
