"""``cancel``: stop a pending or running generation from a shell (its worker learns at its next progress
report or heartbeat and drops it)."""

from __future__ import annotations

import argparse

from ..errors import NotFound
from ..models import Status
from .common import EXIT_OK, open_store
from .output import print_json


def cmd_cancel(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        before = store.get_generation(args.id)
        if before is None:
            raise NotFound(f"no generation with id {args.id}")
        store.cancel(before.id, args.reason)
    running = before.status is Status.PROCESSING
    if args.json:
        print_json(
            {
                "id": before.id,
                "status": Status.CANCELLED.value,
                "was": before.status.value,
                "worker_id": before.worker_id if running else None,
            }
        )
    elif running:
        print(
            f"cancelled {before.id} (was processing by worker {before.worker_id}: it stops at its next "
            "progress report or heartbeat)"
        )
    else:
        print(f"cancelled {before.id} (was {before.status.value})")
    return EXIT_OK
