"""Where a generation's file lives (migration 0006): recorded on completion, read for delivery.

``record_storage`` runs in the transaction that completed the row (``musicstore.recording``);
``get_storage`` reads it back (``musicstore.delivery``); ``storage_between`` and ``import_storage`` carry
it along when ``copy_store`` copies rows between databases.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import validate
from ..errors import InvalidInput, NotFound
from ..ids import check_id
from ..models import Status, columns
from ..models.status import status_of
from ..storage_names import check_checksum, check_key, store_url
from .reads import GENERATION
from .steps import Call, Params, Steps, reader, reads_all, writer

COPIED = columns("id", "storage_url", "storage_key", "checksum")
STORAGE = columns("id", "status", "file_path", "file_size_bytes", "storage_url", "storage_key", "checksum")


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A generation's file: the root's storage URL (None: a local root the reader knows), its key below it,
    its size and SHA-256 (None for files recorded before musicstore kept one)."""

    generation_id: str
    status: Status
    storage_url: str | None
    key: str | None
    size: int | None
    checksum: str | None

    def change_to(self, now: StoredFile) -> str | None:
        """How the file the row names ``now`` differs from this one (read before something was made of it:
        a rendition, peaks); None when it is the same. ``"moved"``: another store or key (``copy-files``);
        ``"changed"``: other bytes at the same place (its size or SHA-256): a dead letter replayed meanwhile,
        its master exported again at its layout key (``replay`` forgets the lost master's renditions)."""
        if (now.storage_url, now.key) != (self.storage_url, self.key):
            return "moved"
        return "changed" if (now.size, now.checksum) != (self.size, self.checksum) else None


@writer
def record_storage(generation_id: str, *, storage_url: str, key: str, checksum: str) -> Steps[None]:
    """Record where a completed generation's file is: the store's URL (``FileStore.url``, recorded in its
    canonical form, the one maintenance compares), the key (the row's ``file_path``) and the SHA-256.

    ``InvalidInput`` for a URL that names no store (or holds credentials), a key that is no object's, a
    checksum that is not 64 lower-case hex digits, or a key that is not the row's ``file_path`` (maintenance
    and ``copy_files`` find the object by the latter); NotFound unless the row is completed."""
    gid = check_id(generation_id)
    url = store_url(storage_url)
    path = check_key(validate.relative_path(key))
    check_checksum(checksum)
    params = {"id": gid, "storage_url": url, "storage_key": path, "checksum": checksum}
    if (yield Call("record_storage", params)) != 1:
        row = yield Call("get_storage", {"id": gid}, STORAGE)
        if row is not None and row[1] == Status.COMPLETED.value and row[2] != path:
            raise InvalidInput(f"key {path!r} is not generation {gid}'s file_path {row[2]!r}")
        raise NotFound(f"generation {gid} is not completed; its file cannot be recorded")


@writer
def lock_generation(generation_id: str) -> Steps[None]:
    """The generation's row locked until the transaction ends, whatever its status (``FOR UPDATE`` on
    PostgreSQL; SQLite's write transaction already excludes the others); nothing written. An export that
    put objects before the transaction recording them removes its own under this lock
    (``recording.uploads``), so that no attempt holding it can take them for a dead attempt's."""
    yield Call("get_generation_for_update", {"id": check_id(generation_id)}, GENERATION)


@reader
def get_storage(generation_id: str) -> Steps[StoredFile]:
    """Where generation ``generation_id``'s file lives; NotFound if there is no such generation."""
    gid = check_id(generation_id)
    row = yield Call("get_storage", {"id": gid}, STORAGE)
    if row is None:
        raise NotFound(f"generation {gid} not found")
    _, status, file_path, size, url, key, checksum = row
    return StoredFile(gid, status_of(status), url, key or file_path, size, checksum)


@reads_all("storage_between", COPIED)
def storage_between(first_id: str, last_id: str) -> Params:
    """(id, storage_url, storage_key, checksum) of the generations with ids ``first_id`` to ``last_id``."""
    return {"first_id": check_id(first_id), "last_id": check_id(last_id)}


@writer
def import_storage(rows: list[tuple[str, str | None, str | None, str | None]]) -> Steps[int]:
    """Record where copied generations' files live (rows from ``storage_between``), on target rows that
    record nothing yet; returns how many rows changed."""
    changed = 0
    for gid, url, key, checksum in rows:
        if url is None and key is None and checksum is None:
            continue
        changed += yield Call(
            "import_storage",
            {"id": check_id(gid), "storage_url": url, "storage_key": key, "checksum": checksum},
        )
    return changed
