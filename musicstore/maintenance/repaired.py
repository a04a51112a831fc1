"""Reconcile's re-check of a finding its own repair did not change: another process (a second
``reconcile --repair``, run at the same time) may have repaired it first. Such a finding is reported with
``action="already_repaired"`` and counted in ``ReconcileReport.already_repaired``; it does not make the run
inconsistent (its exit code 4), since by then the database and the files agree on it."""

from __future__ import annotations

from collections.abc import Iterable

from ..models import Generation, Status
from ..ops import Call, Steps, reader
from ..ops.reads import GENERATION
from ..ops.renditions import RENDITION, Rendition
from ..store import Store
from .findings import DanglingPeaks, DanglingRow, OrphanFile, ReconcileReport, TempFile

ALREADY_REPAIRED = "already_repaired"


@reader
def repaired_meanwhile(
    masters: list[str], renditions: list[str], peaks: list[str]
) -> Steps[tuple[set[str], set[str], set[str]]]:
    """Those of each list of ids that need no repair any more: a dangling master's generation no longer
    completed (marked failed by another reconcile, or deleted), a dangling rendition's row gone, a dangling
    peaks record gone (or its generation no longer completed)."""
    done: tuple[set[str], set[str], set[str]] = (set(), set(), set())
    for gid in masters:
        row: Generation | None = yield Call("get_generation", {"id": gid}, GENERATION)
        if row is None or row.status is not Status.COMPLETED:
            done[0].add(gid)
    for rid in renditions:
        rendition: Rendition | None = yield Call("get_rendition", {"id": rid}, RENDITION)
        if rendition is None:
            done[1].add(rid)
    for gid in peaks:
        row = yield Call("get_generation", {"id": gid}, GENERATION)
        if row is None or row.status is not Status.COMPLETED or "peaks" not in row.metadata:
            done[2].add(gid)
    return done


def settle_rows(
    store: Store,
    report: ReconcileReport,
    masters: Iterable[DanglingRow] = (),
    renditions: Iterable[DanglingRow] = (),
    peaks: Iterable[DanglingPeaks] = (),
) -> None:
    """Re-check the findings whose repair found them ``changed``: those another process repaired meanwhile
    become ``already_repaired``; the others (a row another transaction holds, or one changed otherwise)
    stay ``changed``, for the next run."""
    left: list[list[DanglingRow] | list[DanglingPeaks]] = [
        [item for item in masters if item.action == "changed"],
        [item for item in renditions if item.action == "changed"],
        [item for item in peaks if item.action == "changed"],
    ]
    if not any(left):
        return
    done = store.run(repaired_meanwhile, *[[item.id for item in items] for items in left])
    for items, repaired in zip(left, done, strict=True):
        for item in items:
            if item.id in repaired:
                item.action = ALREADY_REPAIRED
                report.already_repaired += 1


def settle_file(report: ReconcileReport, item: OrphanFile | TempFile) -> None:
    """An orphan (or stale temp file) its repair found gone: removed by another process meanwhile."""
    if item.action == "gone":
        item.action = ALREADY_REPAIRED
        report.already_repaired += 1
