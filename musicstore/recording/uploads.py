"""One export attempt's objects put at their final keys before the transaction that records them
(``musicstore.recording``): no row lock (on SQLite, no database write lock) is held while an upload runs, so
a slow or silent bucket, whose put retries for minutes, keeps no other session from the row meanwhile.

Each object is a conditional create marked with the generation's id (``GENERATION_FIELD``) and a token of
this attempt (``ATTEMPT_FIELD``); a put is whole or not at all, so a final key never holds a partial object.
Two rules keep a row from naming a missing object when attempts of one generation overlap (a worker that
lost its lease and the one that took over):

- an object already at the key marked with the generation's id (an attempt that died between its put and its
  commit, or one still running that lost its claim) is removed only by an attempt holding the row's lock with
  a valid claim, which then commits and puts again; no attempt overwrites one;
- an attempt removes only objects bearing its own token, and only holding the row's lock: an attempt that
  took over may have removed its object and put its own there since.

An object whose recording failed and whose removal failed too (the endpoint or the database down) is left
at its key with no row recording it: reconcile reports it, and a next attempt removes it as above."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ..errors import InvalidInput, StorageError
from ..filestore import FileStore, ObjectInfo
from ..filestore.base import ChecksumMismatch, ObjectExists, ObjectNotFound, briefly, marked_by
from ..ops.storage import lock_generation
from ..storage_names import ATTEMPT_FIELD, GENERATION_FIELD
from ..store import Store

LEFTOVER_REMOVALS = 3
"""How many times a put finding an object of its generation at its key removes it (under the row's lock,
with a valid claim) and puts again, before it gives up with ``ObjectExists``: more than one only while
another attempt of the generation keeps putting there."""


@dataclass(slots=True)
class Uploads:
    """The objects one export attempt puts for ``generation_id`` in ``objects``; ``claim(tx)`` locks the row
    in ``tx`` and checks the attempt's claim (raising LeaseLost... if it is no longer valid)."""

    store: Store
    objects: FileStore
    generation_id: str
    claim: Callable[[Any], None]
    token: str = field(default_factory=lambda: secrets.token_hex(8))
    touched: list[str] = field(default_factory=list)
    """The keys this attempt wrote, or may have written (a put that failed without saying whether it did)."""

    def attempt(self, key: str, put: Callable[[], ObjectInfo]) -> ObjectInfo:
        """``put()`` (a ``put`` at ``key``), ``key`` noted as written when it returns, or when it failed
        without saying whether it wrote the object (its reply lost, then each retry failed: a plain
        ``StorageError``, ``StoreUnavailable``; not a refusal) or was interrupted (a Ctrl-C)."""
        try:
            info = put()
        except (ObjectExists, ChecksumMismatch, InvalidInput):
            raise  # refused: nothing written
        except BaseException as exc:
            if not isinstance(exc, Exception) or isinstance(exc, StorageError):
                self._touch(key)
            raise
        self._touch(key)
        return info

    def put(
        self, key: str, data: BinaryIO | bytes, content_type: str | None,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:  # fmt: skip
        """A conditional create of ``data`` at ``key`` (never over another object: ``ObjectExists``), marked
        with the generation's id and this attempt's token; over a leftover of the generation (an object
        another attempt put, these very bytes too), that leftover removed first (under the row's lock, the
        claim checked) and the create made again."""
        marked = {**(metadata or {}), GENERATION_FIELD: self.generation_id, ATTEMPT_FIELD: self.token}
        for _ in range(LEFTOVER_REMOVALS):
            try:
                info = self.objects.put(key, data, content_type=content_type, metadata=marked)
            except ObjectExists as exc:
                if not marked_by(self.objects, key, exc, self.generation_id):
                    raise  # another generation's, or no object's: left alone
            else:  # a store's put takes an object holding these very bytes for its own (a lost reply's retry)
                if info.metadata.get(ATTEMPT_FIELD, self.token) == self.token:
                    return info  # else another attempt's, which that attempt may remove: not to be recorded
            self._remove_leftover(key)
            if not isinstance(data, bytes):
                data.seek(0)
        raise ObjectExists(
            f"{key} in {self.objects.url}: another attempt of generation {self.generation_id} kept putting "
            f"an object there ({LEFTOVER_REMOVALS} removed)"
        )

    def _touch(self, key: str) -> None:
        if key not in self.touched:
            self.touched.append(key)

    def _remove_leftover(self, key: str) -> None:
        """The object of this generation at ``key`` removed, the row locked and this attempt's claim checked:
        no attempt can record it meanwhile (a completed row's object stays: the claim check fails)."""
        with self.store.transaction() as tx:
            self.claim(tx)
            try:  # checked again under the lock: one attempt, short timeouts (``briefly``)
                marked = briefly(self.objects).head(key).metadata.get(GENERATION_FIELD) == self.generation_id
            except ObjectNotFound:
                return
            if marked:  # the endpoint has just answered: the store's own delete
                self.objects.delete(key)

    def remove(self, exc: BaseException) -> None:
        """After ``exc`` ended the attempt unrecorded: the objects it wrote (or may have), each only if it
        bears this attempt's token, removed holding the row's lock (each request one attempt with short
        timeouts: ``briefly``). Notes on ``exc`` say what was removed and what is unknown."""
        if not self.touched:
            return
        try:
            with self.store.transaction() as tx:
                tx.run(lock_generation, self.generation_id)
                brief = briefly(self.objects)  # InvalidInput for a closed store: unknown, as a failed check
                for key in self.touched:
                    self._remove_own(brief, key, exc)
        except Exception as failed:
            exc.add_note(
                f"the objects this attempt put ({', '.join(self.touched)}) were kept: the row could not be "
                f"locked to remove them ({type(failed).__name__}); reconcile reports them if no row records "
                "them, and a next attempt removes them"
            )

    def _remove_own(self, brief: FileStore, key: str, exc: BaseException) -> None:
        try:
            if brief.head(key).metadata.get(ATTEMPT_FIELD) != self.token:
                return  # not there, or another attempt's since
            brief.delete(key)
        except ObjectNotFound:
            return
        except Exception as cleanup:
            exc.add_note(
                f"whether {key} in {self.objects.url}, which this attempt put (or may have), is still "
                f"there is unknown ({type(cleanup).__name__}); if it is, reconcile reports it (an "
                "orphan) and a next attempt removes it"
            )
            return
        exc.add_note(f"{key}, which this attempt put (or may have), was removed from {self.objects.url}")
