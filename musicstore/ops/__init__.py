"""Every store operation, written once, as a generator that yields what it needs from the database.

An operation yields ``Call(name, params, rows)`` for a named query (and receives its result) or ``NOW`` (and
receives the store clock's current time); it returns its result. The sync and async drivers
(``musicstore.store``, ``musicstore.aio``, with what they share in ``musicstore.runner``) drive the same
generators, so there is one copy of each operation's logic. By concern: ``steps`` (what an operation
yields), ``reads``, ``jobs`` (a job's life), ``prompts``, ``renditions`` (files made from a master),
``transfer`` (rows between stores), ``queue`` (its depth, owner keys' limits, dead letters, replay).
"""

from .jobs import (
    DEFAULT_LEASE_SECONDS,
    DEFAULT_MAX_ATTEMPTS,
    RESET_CONFIRMATION,
    cancel,
    claim_batch,
    claim_next,
    complete_generation,
    create_generation,
    delete_generation,
    fail,
    heartbeat,
    requeue_expired,
    reset_database,
    update_generation_status,
)
from .prompts import PROMPT, get_most_used_prompts, get_prompt_by_text, track_prompt_usage
from .queue import (
    get_owner_limits,
    list_dead_letters,
    queue_depth,
    replay,
    replay_all,
    set_owner_limit,
)
from .reads import (
    GENERATION,
    TOTALS,
    applied_migrations,
    count_generations,
    get_all_generations,
    get_database_stats,
    get_generation,
    get_pending_generations,
    list_generations,
)
from .renditions import (
    RENDITION,
    Rendition,
    create_rendition,
    get_rendition,
    get_rendition_by_settings,
    list_renditions,
    merge_metadata,
)
from .steps import NOW, Call, Operation, Params, Query, Step, Steps, reader, reads_all, reads_one, writer
from .transfer import generations_after, import_rows, prompts_after

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "DEFAULT_MAX_ATTEMPTS",
    "GENERATION",
    "NOW",
    "PROMPT",
    "RENDITION",
    "RESET_CONFIRMATION",
    "TOTALS",
    "Call",
    "Operation",
    "Params",
    "Query",
    "Rendition",
    "Step",
    "Steps",
    "applied_migrations",
    "cancel",
    "claim_batch",
    "claim_next",
    "complete_generation",
    "count_generations",
    "create_generation",
    "create_rendition",
    "delete_generation",
    "fail",
    "generations_after",
    "get_all_generations",
    "get_database_stats",
    "get_generation",
    "get_most_used_prompts",
    "get_owner_limits",
    "get_pending_generations",
    "get_prompt_by_text",
    "get_rendition",
    "get_rendition_by_settings",
    "heartbeat",
    "import_rows",
    "list_dead_letters",
    "list_generations",
    "list_renditions",
    "merge_metadata",
    "prompts_after",
    "queue_depth",
    "reader",
    "reads_all",
    "reads_one",
    "replay",
    "replay_all",
    "requeue_expired",
    "reset_database",
    "set_owner_limit",
    "track_prompt_usage",
    "update_generation_status",
    "writer",
]
