"""The seed's module-level vocabulary: ``get_session`` and functions taking a session (or a store) first.

Each function is the same operation as the ``Store`` method of that name, not a second implementation:
``create_generation(session, ...)`` is ``session.create_generation(...)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

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
