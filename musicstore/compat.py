"""Compatibility with musicstore 0.1: its module-level functions and its module paths.

- ``get_session`` and the functions taking a session (or a store) first. Each is the same operation as the
  ``Store`` method of that name, not a second implementation: ``create_generation(session, ...)`` is
  ``session.create_generation(...)``.
- The 0.1 module paths (``OLD_MODULES``): ``import musicstore.record`` still works and gives the module that
  holds that code now (``musicstore.recording``), with a ``DeprecationWarning``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from types import ModuleType

from .store import Operations, Store, Transaction
from .urls import resolve


def default_store(url: str | None = None) -> Store:
    """One ``Store`` per database in this process (None: ``$MUSICSTORE_DATABASE_URL`` or the default)."""
    return _store(resolve(url).absolute_url)


@cache
def _store(absolute_url: str) -> Store:
    return Store(absolute_url)


@contextmanager
def get_session(url: str | None = None, *, write: bool = True) -> Iterator[Transaction]:
    """A transaction on the store at ``url``: committed when the block ends, rolled back if it raises."""
    with default_store(url).transaction(write=write) as session:
        yield session


create_generation = Operations.create_generation
get_generation = Operations.get_generation
get_all_generations = Operations.get_all_generations
list_generations = Operations.list_generations
get_pending_generations = Operations.get_pending_generations
count_generations = Operations.count_generations
get_database_stats = Operations.get_database_stats
update_generation_status = Operations.update_generation_status
complete_generation = Operations.complete_generation
delete_generation = Operations.delete_generation
reset_database = Operations.reset_database
track_prompt_usage = Operations.track_prompt_usage
get_prompt_by_text = Operations.get_prompt_by_text
get_most_used_prompts = Operations.get_most_used_prompts
claim_next = Operations.claim_next
claim_batch = Operations.claim_batch
heartbeat = Operations.heartbeat
fail = Operations.fail
cancel = Operations.cancel
requeue_expired = Operations.requeue_expired


OLD_MODULES = {
    "musicstore.record": "musicstore.recording",
    "musicstore.session": "musicstore.compat",
    "musicstore.sqlite": "musicstore.backends.sqlite",
    "musicstore.postgres": "musicstore.backends.postgres",
    "musicstore.reconcile": "musicstore.maintenance.reconcile",
    "musicstore.retention": "musicstore.maintenance.retention",
    "musicstore.storage": "musicstore.maintenance.usage",
    "musicstore.backup": "musicstore.maintenance.backup",
    "musicstore.transfer": "musicstore.maintenance.transfer",
    "musicstore.table": "musicstore.cli.table",
    "musicstore.progress": "musicstore.cli.progress",
    "musicstore.demo": "musicstore.cli.demo",
    "musicstore.rootdir": "musicstore.filestore.local",
    "musicstore.fsync": "musicstore.filestore.fsync",
    "musicstore.testing.pgserver": "musicstore.testing._pgserver",
}
"""Each 0.1 module path and the module that holds its code now."""


class _OldModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds a 0.1 module path and loads it as the module it moved to (the same module object)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in OLD_MODULES:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        """The default: a placeholder that ``exec_module`` replaces in ``sys.modules``."""

    def exec_module(self, module: ModuleType) -> None:
        new = OLD_MODULES[module.__name__]
        warnings.warn(f"{module.__name__} is now {new}", DeprecationWarning, stacklevel=2)
        sys.modules[module.__name__] = importlib.import_module(new)  # what the import statement gives


if not any(isinstance(finder, _OldModules) for finder in sys.meta_path):
    sys.meta_path.append(_OldModules())
