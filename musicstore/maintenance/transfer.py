"""Copy every row of one store into another: how an installation moves from SQLite to PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

from .. import ops, validate
from ..ops.queue import get_owner_limits, set_owner_limit
from ..ops.storage import import_storage, storage_between
from ..ops.transfer import check_rendition, import_renditions, renditions_after
from ..store import Store
from .scan import require_store


def copy_store(
    source: Store, target: Store, *, batch: int = 1000, progress: Callable[[int], None] | None = None
) -> int:
    """Copy all prompts, then all generations, their renditions and the owner keys' limits, from ``source``
    to ``target``; returns generations copied.

    Rows keep their ids, statuses, timestamps, metadata, queue fields (priority, run-after, owner and
    idempotency keys), progress and where their files live (storage URL, key, checksum); each batch is one
    transaction on the target. It is idempotent: rerun after an interruption,
    rows already copied are skipped (a prompt keeps the larger usage count). Stop the workers first, or
    generations that change meanwhile are copied as they were when read.

    Every row is checked first, as the operations that write it check it (``check_rows``): a row the target
    could not store as it is (a NUL character in an old SQLite row's text, which PostgreSQL refuses) raises
    ``InvalidInput`` naming the row and the field, and nothing is copied. So does a source or target that is
    not a ``Store`` (an ``AsyncStore`` included), or a ``progress`` that is not callable.
    """
    require_store(target)
    batch = validate.integer(batch, "batch", 1)  # 0 would copy nothing and report success
    validate.callback(progress, "progress")
    check_rows(source, batch=batch)
    after_prompt = 0
    while prompts := source.run(ops.prompts_after, after_prompt, batch):
        target.run(ops.import_rows, prompts, [])
        after_prompt = prompts[-1].id
    copied, after_id = 0, ""
    while generations := source.run(ops.generations_after, after_id, batch):
        located = source.run(storage_between, generations[0].id, generations[-1].id)  # migration 0006
        with target.transaction() as tx:
            copied += tx.run(ops.import_rows, [], generations)
            tx.run(import_storage, located)
        after_id = generations[-1].id
        if progress is not None:
            progress(copied)
    after_rendition = ""
    while renditions := source.run(renditions_after, after_rendition, batch):
        target.run(import_renditions, renditions)
        after_rendition = renditions[-1].id
    for owner_key, max_running in source.run(get_owner_limits).items():
        target.run(set_owner_limit, owner_key, max_running)
    return copied


def check_rows(source: Store, *, batch: int = 1000) -> int:
    """Check every prompt, generation (where its file lives included), rendition and owner limit of
    ``source`` as ``create_generation`` and the other writing operations check their values
    (``validate.imported_prompt``, ``validate.imported_generation``, ``ops.transfer.check_rendition``);
    raises ``InvalidInput`` naming the first bad row and field. Returns the prompts, generations and
    renditions checked, read ``batch`` at a time.
    """
    require_store(source)
    batch = validate.integer(batch, "batch", 1)
    checked, after_prompt = 0, 0
    while prompts := source.run(ops.prompts_after, after_prompt, batch):
        for prompt in prompts:
            validate.imported_prompt(prompt)
        checked += len(prompts)
        after_prompt = prompts[-1].id
    after_id = ""
    while generations := source.run(ops.generations_after, after_id, batch):
        for generation in generations:
            validate.imported_generation(generation)
        for gid, url, key, checksum in source.run(storage_between, generations[0].id, generations[-1].id):
            validate.imported_text(
                "generation", gid, {"storage_url": url, "storage_key": key, "checksum": checksum}
            )
        checked += len(generations)
        after_id = generations[-1].id
    after_rendition = ""
    while renditions := source.run(renditions_after, after_rendition, batch):
        for rendition in renditions:
            check_rendition(rendition)
        checked += len(renditions)
        after_rendition = renditions[-1].id
    for owner_key in source.run(get_owner_limits):
        validate.imported_text("owner limit", owner_key, {"owner_key": owner_key})
    return checked
