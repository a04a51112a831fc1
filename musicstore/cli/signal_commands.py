"""``cancel``: stop a pending or running generation from a shell (its worker learns at its next progress
report or heartbeat and drops it)."""

from __future__ import annotations

import argparse

from ..models import Status
from .common import EXIT_OK, open_store
from .output import print_json
from .table import printable


def cmd_cancel(args: argparse.Namespace) -> int:
    """What it reports is what the cancel changed: the row is read back in the cancel's own transaction,
    which holds the row (the writer lock on SQLite, the row lock on PostgreSQL) until it commits, so a claim
    or a finish racing the cancel cannot make the report wrong. A pending row has no worker (a claim sets
    ``worker_id``; a retry, a requeue and a replay clear it), and ``cancel`` keeps it: a worker id on the
    cancelled row means the generation was processing. An unknown id is ``NotFound`` from ``cancel``. The
    worker id (any text its worker chose) is printed with its control characters escaped, as in tables."""
    with open_store(args) as store, store.transaction() as tx:
        tx.cancel(args.id, args.reason)
        after = tx.get_generation(args.id)
    assert after is not None  # the cancel found it, and holds it
    running = after.worker_id is not None
    was = Status.PROCESSING if running else Status.PENDING
    if args.json:
        worker = after.worker_id
        print_json({"id": after.id, "status": after.status.value, "was": was.value, "worker_id": worker})
    elif after.worker_id is not None:
        print(
            f"cancelled {after.id} (was processing by worker {printable(after.worker_id)}: it stops at its "
            "next progress report or heartbeat)"
        )
    else:
        print(f"cancelled {after.id} (was {was.value})")
    return EXIT_OK
