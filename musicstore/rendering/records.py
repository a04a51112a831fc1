"""A rendition recorded (``musicstore.rendering``): its object put beside the master and its row inserted in
one transaction that holds the generation's row (``_record``), with the rendition's figures as object
metadata (``_object_metadata``), and a commit whose reply was lost checked by reading the row anew
(``_landed``)."""

from __future__ import annotations

from typing import Any

from ..audio.renditions import RenditionResult
from ..errors import StorageError
from ..filestore import FileStore
from ..filestore.base import briefly, put_marked, unput
from ..ops import Rendition
from ..ops.renditions import lock_for_rendition
from ..ops.storage import StoredFile, get_storage
from ..storage_names import GENERATION_FIELD
from ..store import Store


def _object_metadata(result: RenditionResult, generation_id: str) -> dict[str, str]:
    """The rendition's figures as object metadata (printable ASCII values only; the rest left out)."""
    figures: dict[str, str] = {GENERATION_FIELD: generation_id}
    for name, value in result.as_metadata().items():
        if value is None or isinstance(value, dict | list) or name in ("sha256", "bytes"):
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        if text.isascii() and text.isprintable() and text.strip() == text and text:
            figures[name.replace("_", "-")] = text
    return figures


def _record(
    store: Store,
    generation_id: str,
    result: RenditionResult,
    settings: dict[str, Any],
    *,
    data: bytes,
    files: FileStore,
    key: str,
    where: StoredFile,
) -> Rendition:
    """Lock the generation's row and check the request (``lock_for_rendition``: the same errors as
    ``create_rendition``, nothing recorded yet), put the rendition's bytes at ``key`` (a conditional create,
    ``put_marked``), then insert its row, all in one transaction: the insert's trigger (the session's shard
    of the totals on PostgreSQL, which other sessions' rendition writes need too) holds its lock only from
    there to the commit, not through the upload. On any error remove the object if this call put it (before
    the rollback, the row still locked, every other render kept off the key; after it where only the commit
    failed, or that removal did), and re-raise; a put that failed without saying whether it wrote the object,
    or a Ctrl-C landing as it returned, is followed, the row still locked, by the removal of an object there
    marked with this generation's id (``base.unput``): any other is left as it was. An error of the commit
    itself (its reply lost) is checked by reading the row anew: if it landed the object stays and
    the row is returned (a Ctrl-C stays raised); if it cannot be read the object stays and the error is
    raised: never a rendition row without its object. ``where``: the master's place as read before the
    encode; if the locked row names another (``copy-files`` moved it), nothing is put nor recorded
    (``StorageError``)."""
    placed = committing = False
    outcome: bool | None = False  # an object a put of unknown outcome may have written: removed, or unknown
    row: Rendition | None = None
    profile = result.profile
    request: dict[str, Any] = {
        "storage_key": key,
        "settings": settings,  # the request's: the codec's (result.codec), the tolerance, keyed options
        "profile": profile.name,
        "target_lufs": profile.target_lufs,
        "ceiling_dbtp": profile.ceiling_dbtp,
    }
    try:
        with store.transaction() as tx:
            tx.run(lock_for_rendition, generation_id, **request)
            changed = where.change_to(tx.run(get_storage, generation_id))
            if changed is not None:  # copy-files moved it, or a replay exported another master, meanwhile
                raise StorageError(
                    f"generation {generation_id}'s file {changed} while the {result.codec.get('format')} "
                    "rendition was made (copy-files, or a dead letter replayed?); nothing was put nor "
                    "recorded: run render_generation again"
                )
            try:  # the row locked, the request free: only now may the object take its place
                put_marked(files, key, data, generation_id, metadata=_object_metadata(result, generation_id))
                placed = True
                row = tx.create_rendition(  # its trigger's lock held only from here to the commit
                    generation_id,
                    **request,
                    file_size_bytes=result.bytes,
                    duration_seconds=result.duration,
                    loudness_lufs=result.loudness,
                    true_peak_dbtp=result.true_peak,
                    loudness_status=result.status,
                    checksum=result.sha256,
                )
            except BaseException as failed:  # the row still locked: no other render can put there meanwhile
                if not placed:  # or it landed as the put returned: removed if it may be there and ours
                    outcome = unput(files, key, generation_id, failed)
                elif _removed(files, key):  # else removed below, after the rollback, with every retry
                    placed, outcome = False, True
                raise
            committing = True
    except BaseException as exc:
        landed = _landed(store, row, exc) if committing and row is not None else False
        if landed is not False:  # the row records the object, or may: it stays
            if isinstance(landed, Rendition) and isinstance(exc, Exception):
                return landed
            raise
        if placed:
            try:
                files.delete(key)
            except Exception as cleanup:
                exc.add_note(f"and removing {key} from {files.url} failed: {cleanup}")
        done = "its file was removed" if placed or outcome else "nothing was put"
        what, done = result.codec.get("format"), "its file may be left" if outcome is None else done
        exc.add_note(f"the {what} rendition of {generation_id} was not recorded; {done}")
        raise
    assert row is not None
    return row


def _removed(files: FileStore, key: str) -> bool:
    """Whether the object this render put at ``key`` was removed (one attempt per request: ``briefly``), the
    generation's row still locked; a failure is left to the removal after the rollback."""
    try:
        briefly(files).delete(key)
    except Exception:
        return False
    return True


def _landed(store: Store, row: Rendition, exc: BaseException) -> Rendition | bool | None:
    """Whether the commit that raised ``exc`` landed (a connection lost after the server committed, before
    its reply): the rendition's row read anew, recording this key and checksum; False if it is not there;
    None if it cannot be read."""
    try:
        found = store.get_rendition(row.id)
    except Exception as read_error:
        exc.add_note(
            f"whether the rendition {row.id} of {row.generation_id} was recorded is unknown ("
            f"{type(read_error).__name__}: {read_error}); its object {row.storage_key} was kept (reconcile "
            "reports it if orphaned)"
        )
        return None
    if found is None or found.storage_key != row.storage_key or found.checksum != row.checksum:
        return False
    exc.add_note(f"the rendition {row.id} of {row.generation_id} was recorded (its commit landed)")
    return found
