"""Two stores on copies of one database, for tests that compare a write run directly with the same write
driven as its steps in a transaction (``tests/test_writes_*.py``)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from musicstore import MusicstoreError, Store
from musicstore.testing import FakeClock

T = TypeVar("T")


@contextmanager
def twin_stores(
    template: Path, start: datetime | None, prepare: Callable[[Store], T]
) -> Iterator[tuple[Store, Store, T]]:
    """Two stores (clocks at ``start``) on copies of ``template`` once ``prepare`` has run on it; with what
    ``prepare`` returned."""
    with tempfile.TemporaryDirectory() as folder:
        first, second = Path(folder) / "a.db", Path(folder) / "b.db"
        shutil.copy(template, first)
        with Store(f"sqlite:///{first}", clock=FakeClock(start)) as setup:
            prepared = prepare(setup)
        shutil.copy(first, second)  # the last connection closed: the WAL is in the file
        direct = Store(f"sqlite:///{first}", clock=FakeClock(start))
        stepped = Store(f"sqlite:///{second}", clock=FakeClock(start))
        try:
            yield direct, stepped, prepared
        finally:
            direct.close()
            stepped.close()


def answer(call: Callable[[], object]) -> tuple[str, object]:
    """What ``call`` returned, or its error's type and message."""
    try:
        return "ok", call()
    except MusicstoreError as exc:
        return type(exc).__name__, str(exc)
