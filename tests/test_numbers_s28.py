"""Numbers from numpy, and fractions, where the public API takes a number (session 28).

ML code hands the store numpy scalars: ``report_progress(id, w, np.float32(0.5))`` or
``create_generation(..., priority=np.int64(5))`` raised InvalidInput ("must be a number/an integer") while
``np.float64`` (a float subclass) passed. Any binary ``numbers.Real`` (numpy's floats and integers) is now
taken where a float is (as a plain float), any ``numbers.Integral`` where an int is (as a plain int); bool,
``numpy.bool_``, ``Decimal``, ``Fraction`` (tests/test_input_properties.py refuses it), str, NaN and
out-of-range values are refused as before. Results hold plain Python numbers only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from musicstore import AsyncStore, RetryPolicy, Store, validate
from musicstore.errors import InvalidInput
from musicstore.filestore import LocalFileStore
from musicstore.ops.progress import fraction
from tests.conftest import FakeClock

Real = Callable[[float], Any]
Whole = Callable[[int], Any]

PLAIN: tuple[Real, Whole] = (float, int)
KINDS: dict[str, tuple[Real, Whole]] = {
    "numpy32": (np.float32, np.int64),
    "numpy16": (np.float16, np.int32),
    "longdouble": (np.longdouble, np.uint16),
}
RENDITION: dict[str, Any] = {
    "settings": {"format": "mp3", "sample_rate": 32_000, "channels": 2, "bitrate_mode": "constant",
                 "bitrate_kbps": 192},
    "profile": "streaming", "loudness_status": "normalized", "checksum": "0" * 64,
}  # fmt: skip


def _plain(value: object) -> None:
    """No numpy type, no Fraction, in a result: at any depth of a dataclass, list or dict."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            _plain(getattr(value, field.name))
    elif isinstance(value, list | tuple):
        for item in value:
            _plain(item)
    elif isinstance(value, dict):
        for item in value.values():
            _plain(item)
    else:
        assert type(value).__module__ == "builtins" or not isinstance(value, np.generic | Fraction), value
        if isinstance(value, int | float):
            assert type(value) in (int, float, bool), type(value)


def _lifecycle(store: Store, owner: str, real: Real, whole: Whole) -> list[Any]:
    """Every numeric parameter of the sync Store once, with ``real``/``whole`` numbers: what it gave."""
    got: list[Any] = []
    fields = {"model_name": "m", "sample_rate": whole(32_000), "channels": whole(2), "owner_key": owner}
    job = store.create_generation("a prompt", duration_seconds=real(30.0), priority=whole(5), **fields)
    got.append(job)
    claimed = store.claim_next("w1", lease_seconds=real(300.0), owner_limit=whole(1))
    assert claimed is not None and claimed.id == job.id
    got.append(store.heartbeat(job.id, "w1", lease_seconds=real(120.0)))
    assert store.report_progress(job.id, "w1", real(0.5), "sampling", lease_seconds=real(60.0)) is True
    got.append(store.get_generation(job.id))
    done = store.complete_generation(
        job.id, file_path="out.wav", file_size_bytes=whole(1_000), generation_time_seconds=real(12.5)
    )
    got.append(done)
    got.append(store.wait_for(job.id, timeout=real(1.0)))
    rendition = store.create_rendition(
        job.id, storage_key=f"{owner}.streaming.mp3", target_lufs=real(-14.0), ceiling_dbtp=real(-1.0),
        file_size_bytes=whole(100), duration_seconds=real(30.0), loudness_lufs=real(-14.5),
        true_peak_dbtp=real(-1.5), **RENDITION,
    )  # fmt: skip
    got.append(rendition)
    same = store.get_rendition_by_settings(
        job.id, RENDITION["settings"], profile="streaming", target_lufs=real(-14.0), ceiling_dbtp=real(-1.0)
    )
    assert same is not None and same.id == rendition.id
    got.append(same)
    store.set_owner_limit(owner, whole(2))
    failing = store.create_generation("another", duration_seconds=real(10.0), **fields)
    batch = store.claim_batch("w2", whole(2), lease_seconds=real(300.0), owner_limit=whole(2))
    assert [g.id for g in batch] == [failing.id]
    backoff = RetryPolicy(base_seconds=real(2.0), cap_seconds=real(600.0), jitter=real(0.0))
    got.append(store.fail(failing.id, "boom", max_attempts=whole(3), backoff=backoff))
    got.append(store.get_generation(failing.id))
    got.append(store.queue_position(failing.id, window_seconds=real(600.0)))
    got.append([g.id for g in store.list_generations(limit=whole(10), offset=whole(0)).items])
    got.append(len(store.get_pending_generations(limit=whole(5))))
    got.append([(p.text, p.used_count) for p in store.get_most_used_prompts(limit=whole(3))])
    got.append(store.list_dead_letters(limit=whole(5)).items)
    return got


def _comparable(results: list[Any]) -> list[Any]:
    """The results without their ids (each run makes its own jobs)."""
    out: list[Any] = []
    for item in results:
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            values = dataclasses.asdict(item)
            out.append({k: v for k, v in values.items() if not k.endswith("id") and "key" not in k})
        elif isinstance(item, list) and item and isinstance(item[0], str):  # ids
            out.append(len(item))
        else:
            out.append(item)
    return out


@pytest.mark.parametrize("kind", list(KINDS))
def test_numpy_and_fraction_numbers_do_what_plain_ones_do(db_url: str, kind: str, tmp_path: Path) -> None:
    real, whole = KINDS[kind]
    expected: list[Any] = []
    got: list[Any] = []
    for index, (use, kinds) in enumerate(((expected, PLAIN), (got, (real, whole)))):
        clock = FakeClock()  # each run at the same instants: equal timestamps
        with Store(db_url, clock=clock, busy_timeout=kinds[0](5.0), pool_size=kinds[1](2)) as store:
            store.reset_database(confirm="delete everything")
            use.extend(_lifecycle(store, f"o{index}", *kinds))
    _plain(got)
    assert _comparable(got) == _comparable(expected)
    assert got[0].priority == 5 and type(got[0].priority) is int
    assert got[2].progress == 0.5 and type(got[2].progress) is float
    assert type(got[3].generation_time_seconds) is float and type(got[3].file_size_bytes) is int


def test_async_store_takes_numpy_numbers(sqlite_url: str) -> None:
    f32: Any = np.float32
    i64: Any = np.int64

    async def main() -> None:
        async with AsyncStore(sqlite_url, busy_timeout=f32(5.0), pool_size=i64(2)) as store:
            job = await store.create_generation(
                "p", model_name="m", duration_seconds=f32(30.0), priority=i64(5)
            )
            claimed = await store.claim_next("w1", lease_seconds=f32(300.0))
            assert claimed is not None
            assert await store.report_progress(job.id, "w1", f32(0.25), "s") is True
            row = await store.get_generation(job.id)
            assert row is not None
            _plain(row)
            assert (row.priority, row.progress, row.duration_seconds) == (5, 0.25, 30.0)
            assert len((await store.list_generations(limit=i64(3))).items) == 1

    asyncio.run(main())


REFUSED = [
    True,
    np.bool_(True),
    Decimal("0.5"),
    Fraction(1, 2),
    "0.5",
    math.nan,
    np.float32("nan"),
    np.float64("inf"),
    None,
]


@pytest.mark.parametrize("value", REFUSED, ids=repr)
def test_still_refused_where_a_number_is_taken(store: Store, value: object) -> None:
    with pytest.raises(InvalidInput, match=r"must be|number|finite"):
        store.create_generation("p", model_name="m", duration_seconds=value)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="fraction must be a number from 0 to 1"):
        fraction(value)
    with pytest.raises(InvalidInput, match=r"RetryPolicy\.jitter"):
        RetryPolicy(jitter=value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value", [True, np.bool_(True), Decimal(5), "5", 5.0, np.float32(5.0), Fraction(5)], ids=repr
)
def test_still_refused_where_an_integer_is_taken(store: Store, value: object) -> None:
    with pytest.raises(InvalidInput, match="priority must be an integer"):
        store.create_generation("p", model_name="m", duration_seconds=1.0, priority=value)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="limit"):
        store.list_generations(limit=value)  # type: ignore[arg-type]


def test_the_messages_and_ranges_are_unchanged() -> None:
    with pytest.raises(InvalidInput, match=r"^x must be a number, got Decimal\('1'\)$"):
        validate.number(Decimal(1), "x", positive=True)
    with pytest.raises(InvalidInput, match=r"^x must be an integer, got '1'$"):
        validate.integer("1", "x", 0)
    with pytest.raises(InvalidInput, match=r"^x must be between 0 and 10, got np\.int64\(11\)$"):
        validate.integer(np.int64(11), "x", 0, 10)
    with pytest.raises(InvalidInput, match="x must be at most 5"):
        validate.number(np.float32(6), "x", positive=True, high=5.0)
    with pytest.raises(InvalidInput, match="finite number > 0"):
        validate.number(np.float32(-1), "x", positive=True)
    with pytest.raises(InvalidInput, match="finite number > 0"):
        validate.number(np.int64(-1), "x", positive=True)
    with pytest.raises(InvalidInput, match=r"^x must be a number, got Fraction\(3, 2\)$"):
        validate.seconds(Fraction(3, 2), "x")
    assert type(validate.integer(np.uint64(2**63 - 1), "x", 0)) is int
    with pytest.raises(InvalidInput, match="between"):
        validate.integer(np.uint64(2**63), "x", 0)
    assert validate.number(np.float32(-0.0), "x", positive=False) == 0.0
    assert math.copysign(1.0, validate.number(np.float32(-0.0), "x", positive=False)) == 1.0
    assert type(validate.seconds(np.int64(3), "x")) is float
    assert validate.number(np.float64(2.5), "x", positive=True) == 2.5
    assert fraction(np.float16(1.0)) == 1.0 and type(fraction(np.float16(1.0))) is float


def test_filestore_sizes_and_expiry_take_numpy_integers(tmp_path: Path) -> None:
    whole: Any = np.int64
    files = LocalFileStore(tmp_path / "files")
    files.put("a/b.bin", b"x" * 10)
    assert b"".join(files.get("a/b.bin", chunk_size=whole(3))) == b"x" * 10
    assert [o.key for o in files.list("a/", page_size=whole(5))] == ["a/b.bin"]
    assert files.presigned_url("a/b.bin", expires=whole(60)).startswith("file://")
    for bad in (True, np.bool_(True), 3.0, Decimal(3)):
        with pytest.raises(InvalidInput, match="chunk_size"):
            list(files.get("a/b.bin", chunk_size=bad))  # type: ignore[arg-type]


def test_export_audio_takes_numpy_numbers(tmp_path: Path) -> None:
    from musicstore.audio import ExportOptions, export_audio

    t = np.arange(8_000, dtype=np.float32) / 8_000
    clip = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    results = []
    kinds: list[tuple[str, Any, Any]] = [("plain", float, int), ("numpy", np.float32, np.int64)]
    kinds.append(("fraction", Fraction, np.uint32))  # ExportOptions took a Fraction already
    for name, real, whole in kinds:
        options = ExportOptions(
            target_lufs=real(-16.0), ceiling_dbtp=real(-1.0), tolerance_lu=real(0.5), dither_seed=whole(7)
        )
        assert type(options.target_lufs) is float and type(options.dither_seed) is int
        result = export_audio(clip, whole(8_000), tmp_path / f"{name}.wav", options)
        _plain(result)
        assert type(result.sample_rate) is int
        results.append((tmp_path / f"{name}.wav").read_bytes())
    assert results[0] == results[1] == results[2]
    with pytest.raises(InvalidInput):
        ExportOptions(target_lufs=np.bool_(True))  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        ExportOptions(target_lufs=Decimal(-14))  # type: ignore[arg-type]


def test_s3_part_sizes_take_numpy_integers() -> None:
    from musicstore.filestore.s3_settings import check_settings

    whole: Any = np.int64
    settings = check_settings("bucket", part_size=whole(8 << 20), multipart_threshold=whole(16 << 20))
    assert (settings["part_size"], settings["multipart_threshold"]) == (8 << 20, 16 << 20)
    assert type(settings["part_size"]) is int and type(settings["multipart_threshold"]) is int
    with pytest.raises(InvalidInput, match="part_size"):
        check_settings("bucket", part_size=np.float64(8 << 20))  # type: ignore[arg-type]
