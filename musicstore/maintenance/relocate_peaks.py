"""``copy_files``' peaks files of a generation (``musicstore.maintenance.relocate``): those its row records,
the audiowaveform file and the normalised one, checked against their records, and the others beside its
master found by name."""

from __future__ import annotations

import json
import posixpath
from typing import Any

from ..errors import InvalidInput, StorageError
from ..filestore import FileStore, ObjectNotFound
from .dry_target import sha256_of
from .scan import is_peaks_of


def _recorded_files(record: Any) -> list[tuple[str, Any]]:
    """(what, record) of each file ``metadata["peaks"]`` records: its own, then its ``normalized`` if any."""
    if record is None:
        return []
    files: list[tuple[str, Any]] = [("metadata['peaks']", record)]
    if isinstance(record, dict) and record.get("normalized") is not None:
        files.append(("metadata['peaks']['normalized']", record["normalized"]))
    return files


def peaks_of(origin: FileStore, row: dict[str, Any]) -> list[tuple[str, int | None, str]]:
    """The (key, size, SHA-256) of each peaks file of ``row`` in ``origin``: the recorded ones (the peaks file
    and the normalised one in its record's ``normalized``: each record's size and hash; ``StorageError``
    when one is not there) and the others beside the master found by name, each
    hashed where it is (the SHA-256 its store keeps, else read; a dry run too, as the run). Raises
    ``InvalidInput`` for a record that is not one."""
    found: list[tuple[str, int | None, str]] = []
    folder, _, name = row["file_path"].rpartition("/")
    stem = posixpath.splitext(name)[0]
    prefix = f"{folder}/{stem}.peaks." if folder else f"{stem}.peaks."
    # listed first: a missing bucket is StoreUnavailable here (stopping the run), where a HEAD's 404 says
    # only that the recorded file is missing (each row was skipped as such)
    beside = list(origin.list(prefix))
    record = None if row["peaks"] is None else json.loads(row["peaks"])
    for what, file in _recorded_files(record):
        key, size, sha = (file.get(k) if isinstance(file, dict) else None for k in ("key", "bytes", "sha256"))
        if not (isinstance(key, str) and type(size) is int and isinstance(sha, str) and len(sha) == 64):
            raise InvalidInput(f"{what} is not a record of a peaks file (key, bytes, sha256): {file!r}")
        try:
            origin.head(key)
        except ObjectNotFound:
            raise StorageError(
                f"its recorded peaks file {key} is not in {origin.url}; render_peaks puts it back"
            ) from None
        found.append((key, size, sha))
    known = {key for key, _, _ in found}
    for obj in beside:
        if (
            obj.key in known
            or not obj.key.startswith(prefix)
            or not is_peaks_of(obj.key.rpartition("/")[2], stem, row["id"])  # not another's (its id's hex)
        ):
            continue
        found.append((obj.key, obj.size, sha256_of(origin, obj.key)))
    return found
