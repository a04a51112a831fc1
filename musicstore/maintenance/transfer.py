"""Copy every row of one store into another: how an installation moves from SQLite to PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

from .. import ops, validate
from ..errors import InvalidInput, shown
from ..models import Generation
from ..ops.queue import get_owner_limits, set_owner_limit
from ..ops.renditions import Rendition, settings_key
from ..ops.storage import import_storage, storage_between
from ..ops.transfer import (
    check_rendition,
    idempotency_keys_held,
    import_lanes_served,
    import_renditions,
    lanes_served_after,
    renditions_after,
    renditions_held,
)
from ..store import Store
from .scan import require_store


def copy_store(
    source: Store, target: Store, *, batch: int = 1000, progress: Callable[[int], None] | None = None
) -> int:
    """Copy all prompts, then all generations, their renditions, the owner keys' limits and when each key's
    lane was last served (the claim's round robin), from ``source`` to ``target``; returns generations
    copied.

    Rows keep their ids, statuses, timestamps, metadata, queue fields (priority, run-after, owner and
    idempotency keys), progress and where their files live (storage URL, key, checksum); each batch is one
    transaction on the target. It is idempotent: rerun after an interruption,
    rows already copied are skipped (a prompt keeps the larger usage count). Stop the workers first, or
    generations that change meanwhile are copied as they were when read.

    Every row is checked first, as the operations that write it check it (``check_rows``): a row the target
    could not store as it is (a NUL character in an old SQLite row's text, which PostgreSQL refuses) raises
    ``InvalidInput`` naming the row and the field, and nothing is copied. So does a source or target that is
    not a ``Store`` (an ``AsyncStore`` included), or a ``progress`` that is not callable.

    The target is an empty store, or one earlier copies of this source filled (a rerun). In the same first
    pass each row is looked up in the target: a row the target holds another of by a unique key (a
    generation of another id with its idempotency key; a rendition of another id at its storage key, or for
    the same generation, format and settings) raises ``InvalidInput`` naming both rows and the key, and
    nothing is copied (before, the prompts and the pages before it were in the target when the clash
    stopped the copy with a ``DatabaseError``). Stop every writer to the target too: a row written there
    after this check can still stop the copy part way (rerun it once that row is gone).
    """
    require_store(target)
    batch = validate.integer(batch, "batch", 1)  # 0 would copy nothing and report success
    validate.callback(progress, "progress")
    _checked(source, target, batch)
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
    after_key = ""  # when each owner key's lane was last served: the round robin's order, kept by no row
    while lanes := source.run(lanes_served_after, after_key, batch):
        target.run(import_lanes_served, lanes)
        after_key = lanes[-1][0]
    return copied


def check_rows(source: Store, *, batch: int = 1000) -> int:
    """Check every prompt, generation (where its file lives included), rendition and owner limit of
    ``source`` as ``create_generation`` and the other writing operations check their values
    (``validate.imported_prompt``, ``validate.imported_generation``, ``ops.transfer.check_rendition``);
    raises ``InvalidInput`` naming the first bad row and field. Returns the prompts, generations and
    renditions checked, read ``batch`` at a time.
    """
    require_store(source)
    return _checked(source, None, validate.integer(batch, "batch", 1))


def _checked(source: Store, target: Store | None, batch: int) -> int:
    """``check_rows``; with a ``target``, each batch of generations and renditions also looked up there
    (``_clashes``)."""
    require_store(source)
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
            validate.imported(
                "generation", gid, {"storage_url": url, "storage_key": key, "checksum": checksum}
            )
        if target is not None:
            _generations_clash(target, generations)
        checked += len(generations)
        after_id = generations[-1].id
    after_rendition = ""
    while renditions := source.run(renditions_after, after_rendition, batch):
        for rendition in renditions:
            check_rendition(rendition)
        if target is not None:
            _renditions_clash(target, renditions)
        checked += len(renditions)
        after_rendition = renditions[-1].id
    for owner_key in source.run(get_owner_limits):
        validate.imported("owner limit", owner_key, {"owner_key": owner_key})
    return checked


_ONLY = (
    "copy_store copies into an empty store or one an earlier copy of this source filled; nothing was copied"
)


def _generations_clash(target: Store, generations: list[Generation]) -> None:
    """``InvalidInput`` for a generation whose idempotency key a generation of another id holds in
    ``target`` (the target's unique index would refuse it part way through the copy)."""
    keyed = {g.idempotency_key: g.id for g in generations if g.idempotency_key is not None}
    if not keyed:
        return
    for key, held_by in target.run(idempotency_keys_held, list(keyed)).items():
        if held_by != keyed[key]:
            raise InvalidInput(
                f"generation {shown(keyed[key])}: idempotency_key {shown(key)} is held in the target by "
                f"generation {shown(held_by)}; {_ONLY}"
            )


def _renditions_clash(target: Store, renditions: list[Rendition]) -> None:
    """``InvalidInput`` for a rendition a rendition of another id in ``target`` clashes with: at its storage
    key, or of its generation, format and settings (the target's unique keys)."""
    held = target.run(
        renditions_held,
        [r.storage_key for r in renditions],
        sorted({r.generation_id for r in renditions}),
    )
    at_key = {h["storage_key"]: h["id"] for h in held}
    by_request = {(h["generation_id"], h["format"], h["settings"]): h["id"] for h in held}
    for rendition in renditions:
        request = (rendition.generation_id, rendition.format, settings_key(rendition.settings))
        for what, other in (
            (f"storage_key {shown(rendition.storage_key)} is", at_key.get(rendition.storage_key)),
            ("generation, format and settings are", by_request.get(request)),
        ):
            if other is not None and other != rendition.id:
                raise InvalidInput(
                    f"rendition {shown(rendition.id)}: its {what} held in the target by rendition "
                    f"{shown(other)}; {_ONLY}"
                )
