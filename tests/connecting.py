"""Opening a store whose ``busy_timeout`` is short on purpose (the operation under test must time out) on a
loaded machine: on PostgreSQL that timeout also bounds the wait for the pool's first connection (then
libpq's connect timeout, 2 s), which a busy 2-core CI host can exceed; the open then raised DatabaseBusy
('no pooled connection came free in time'), failing a test about something else. The open is retried on
DatabaseBusy until it connects (a generous deadline); the store keeps that connection for the test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from musicstore import DatabaseBusy

T = TypeVar("T")
OPEN_DEADLINE_SECONDS = 120.0


def opened(make: Callable[[], T]) -> T:
    """``make()`` (a ``Store(...)``), made again while it raises DatabaseBusy, for up to the deadline."""
    deadline = time.monotonic() + OPEN_DEADLINE_SECONDS
    while True:
        try:
            return make()
        except DatabaseBusy:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


async def opened_async(make: Callable[[], Awaitable[T]]) -> T:
    """``await make()`` (an ``AsyncStore.open(...)``), made again while it raises DatabaseBusy, for up to
    the deadline."""
    deadline = time.monotonic() + OPEN_DEADLINE_SECONDS
    while True:
        try:
            return await make()
        except DatabaseBusy:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
