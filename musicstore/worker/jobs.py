"""The job a handler runs (``musicstore.worker``, which re-exports these names): :class:`Job` for a
``Worker``'s handler, :class:`AsyncJob` for an ``AsyncWorker``'s: the claimed generation, whether the worker
is stopping, and the calls a running job makes (progress, heartbeat)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from ..models import Generation

if TYPE_CHECKING:
    from . import AsyncWorker, Worker, _Loop


class _Running:
    """What ``Job`` and ``AsyncJob`` share: the claimed generation's id, and whether its worker stops."""

    __slots__ = ()
    generation: Generation
    worker: _Loop

    @property
    def id(self) -> str:
        return self.generation.id

    @property
    def stopping(self) -> bool:
        """The worker was asked to stop (SIGTERM): finish or cut short this job; no other is claimed."""
        return self.worker.stopping


@dataclass(slots=True)
class Job(_Running):
    """The job a ``Worker``'s handler runs: the claimed generation and the calls a running job makes."""

    generation: Generation
    worker: Worker

    def progress(self, fraction: float, stage: str | None = None) -> bool:
        """Report progress (``Store.report_progress``: coalesced; whether it was written). A report, written
        or not, raises ``Cancelled`` if the job was cancelled, ``LeaseLost`` if it was taken back: let either
        pass."""
        return self.worker.store.report_progress(
            self.id, self.worker.worker_id, fraction, stage, lease_seconds=self.worker.lease_seconds
        )

    def heartbeat(self) -> datetime:
        """Extend the lease (``Store.heartbeat``); raises ``Cancelled``/``LeaseLost`` as ``progress`` does."""
        return self.worker.store.heartbeat(
            self.id, self.worker.worker_id, lease_seconds=self.worker.lease_seconds
        )


@dataclass(slots=True)
class AsyncJob(_Running):
    """The job an ``AsyncWorker``'s handler runs: ``Job`` with awaited calls."""

    generation: Generation
    worker: AsyncWorker

    async def progress(self, fraction: float, stage: str | None = None) -> bool:
        """``Job.progress``, awaited (``AsyncStore.report_progress``)."""
        return await self.worker.store.report_progress(
            self.id, self.worker.worker_id, fraction, stage, lease_seconds=self.worker.lease_seconds
        )

    async def heartbeat(self) -> datetime:
        """``Job.heartbeat``, awaited (``AsyncStore.heartbeat``)."""
        return await self.worker.store.heartbeat(
            self.id, self.worker.worker_id, lease_seconds=self.worker.lease_seconds
        )
