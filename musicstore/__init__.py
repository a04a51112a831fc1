"""musicstore: the job store and audio export layer of an AI music generation service.

>>> from musicstore import Store, migrate               # doctest: +SKIP
>>> migrate("sqlite:///data/generations.db")
>>> store = Store("sqlite:///data/generations.db")
>>> job = store.create_generation("lofi hip hop at 90 BPM", model_name="musicgen", duration_seconds=30)
>>> claimed = store.claim_next("gpu-0")
"""

from . import interrupt  # noqa: F401  first: the command's Ctrl-C handling while the rest imports
from .aio import AsyncStore, AsyncTransaction
from .compat import (
    cancel,
    claim_batch,
    claim_next,
    complete_generation,
    count_generations,
    create_generation,
    delete_generation,
    fail,
    get_all_generations,
    get_database_stats,
    get_generation,
    get_most_used_prompts,
    get_pending_generations,
    get_prompt_by_text,
    get_session,
    heartbeat,
    list_generations,
    requeue_expired,
    reset_database,
    track_prompt_usage,
    update_generation_status,
)
from .errors import (
    Cancelled,
    ConfirmationRequired,
    DatabaseBusy,
    DatabaseError,
    IdempotencyConflict,
    InvalidAudio,
    InvalidInput,
    InvalidTransition,
    LeaseLost,
    MigrationError,
    MusicstoreError,
    NotFound,
    RenditionFailed,
    StorageError,
)
from .migrate import init_db, migrate
from .models import (
    TRANSITIONS,
    Generation,
    Page,
    Prompt,
    QueueDepth,
    QueueLevel,
    Requeued,
    RetryPolicy,
    Stats,
    Status,
)
from .ops import DEFAULT_LEASE_SECONDS, DEFAULT_MAX_ATTEMPTS, RESET_CONFIRMATION
from .ops.progress import QueuePosition
from .store import Store, Transaction
from .worker import Job, Worker, WorkerReport

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "DEFAULT_MAX_ATTEMPTS",
    "RESET_CONFIRMATION",
    "TRANSITIONS",
    "AsyncStore",
    "AsyncTransaction",
    "Cancelled",
    "ConfirmationRequired",
    "DatabaseBusy",
    "DatabaseError",
    "Generation",
    "IdempotencyConflict",
    "InvalidAudio",
    "InvalidInput",
    "InvalidTransition",
    "Job",
    "LeaseLost",
    "MigrationError",
    "MusicstoreError",
    "NotFound",
    "Page",
    "Prompt",
    "QueueDepth",
    "QueueLevel",
    "QueuePosition",
    "RenditionFailed",
    "Requeued",
    "RetryPolicy",
    "Stats",
    "Status",
    "StorageError",
    "Store",
    "Transaction",
    "Worker",
    "WorkerReport",
    "cancel",
    "claim_batch",
    "claim_next",
    "complete_generation",
    "count_generations",
    "create_generation",
    "delete_generation",
    "fail",
    "get_all_generations",
    "get_database_stats",
    "get_generation",
    "get_most_used_prompts",
    "get_pending_generations",
    "get_prompt_by_text",
    "get_session",
    "heartbeat",
    "init_db",
    "list_generations",
    "migrate",
    "requeue_expired",
    "reset_database",
    "track_prompt_usage",
    "update_generation_status",
]
