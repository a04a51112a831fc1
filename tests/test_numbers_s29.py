"""Numbers handled alike across the public API (session 29), after session 28's numpy numbers
(tests/test_numbers_s28.py).

- A claim wait's ``owner_limit`` given as ``np.int64(2)`` is in the herd of the waits with ``owner_limit=2``
  (it made a herd of its own: every notification woke each such wait).
- The audio side's numbers (``ExportOptions``, ``LoudnessProfile``, ``RenditionSpec``, ``RenditionOptions``,
  ``as_audio``'s scale, the synthesizers) are checked by ``validate.real_number(value, fractions=True)`` and
  ``validate.whole_number``: one set of kinds, each kept as a plain float or int (an ``np.float64``, a float
  subclass, was kept as it was by ``LoudnessProfile``, ``RenditionOptions`` and ``RenditionSpec.quality``).
- Metadata takes numpy's scalars, as a worker gets them from a model or a tensor (``{"bpm": np.int64(90),
  "temperature": np.float32(0.7)}`` was refused): its integers as ints (within 64 bits), its floats as the
  float of equal value (finite), ``np.bool_`` as a bool; kept and returned in that plain form, at any depth,
  by ``create_generation``, ``complete_generation``, ``merge_metadata`` and ``export_generation`` on both
  backends, sync and async. What is not JSON stays refused (tuples, Decimal, Fraction, arrays, NaN).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from musicstore import AsyncStore, Store, validate, waiting
from musicstore.errors import InvalidInput
from musicstore.waiting import hub as listening
from musicstore.waiting.herds import Herds

# --- owner_limit as a numpy integer: the herd of the plain int -------------------------------------------


@pytest.mark.parametrize("limit", [np.int64(2), np.int32(2), np.uint8(2)])
def test_a_numpy_owner_limit_is_in_the_herd_of_the_plain_int(limit: Any) -> None:
    assert waiting.claiming({"owner_limit": limit}) == waiting.claiming({"owner_limit": 2})
    assert waiting.claiming({"owner_limit": limit}) != waiting.claiming({"owner_limit": 3})
    assert waiting.claiming({"owner_limit": limit}) != waiting.claiming({})


def test_a_notification_wakes_one_of_the_waits_with_a_numpy_owner_limit() -> None:
    """Ten claim waits with ``owner_limit=np.int64(2)``, armed: a notification wakes one of them, as it
    wakes one of ten with ``owner_limit=2`` (it woke all ten)."""
    herds = Herds()
    waits = [listening._ThreadWaiter(waiting.claiming({"owner_limit": np.int64(2)})) for _ in range(10)]
    for wait in waits:
        herds.add(wait)
        herds.armed(wait)
    assert len(herds.wake(waiting.PENDING, "")) == 1


@pytest.mark.parametrize("limit", [True, 2.0, "2", -1.5])
def test_an_owner_limit_the_claim_refuses_still_makes_a_herd_of_its_own(limit: Any) -> None:
    assert waiting.claiming({"owner_limit": limit}) != waiting.claiming({"owner_limit": 2})
    assert waiting.claiming({"owner_limit": limit}) != waiting.claiming({"owner_limit": limit})


# --- the audio side's numbers: one set of kinds, kept as plain floats ---------------------------------------


def _levels() -> dict[str, tuple[Callable[[Any], Any], str, float]]:
    """Each number of the audio side's options: how to make one with it, the field it lands in, and a value
    in its range."""
    from musicstore.audio import ExportOptions, LoudnessProfile, RenditionSpec
    from musicstore.audio.renditions import RenditionOptions

    return {
        "ExportOptions.target_lufs": (lambda v: ExportOptions(target_lufs=v), "target_lufs", -16.0),
        "ExportOptions.ceiling_dbtp": (lambda v: ExportOptions(ceiling_dbtp=v), "ceiling_dbtp", -2.0),
        "ExportOptions.tolerance_lu": (lambda v: ExportOptions(tolerance_lu=v), "tolerance_lu", 0.5),
        "LoudnessProfile.target_lufs": (LoudnessProfile, "target_lufs", -16.0),
        "LoudnessProfile.ceiling_dbtp": (lambda v: LoudnessProfile(-16, v), "ceiling_dbtp", -2.0),
        "LoudnessProfile.tolerance_lu": (lambda v: LoudnessProfile(-16, -1, v), "tolerance_lu", 0.5),
        "RenditionOptions.margin_db": (lambda v: RenditionOptions(margin_db=v), "margin_db", 0.5),
        "RenditionOptions.headroom_db": (lambda v: RenditionOptions(headroom_db=v), "headroom_db", 1.0),
        "RenditionOptions.max_gain_db": (lambda v: RenditionOptions(max_gain_db=v), "max_gain_db", 12.0),
        "RenditionSpec.quality": (lambda v: RenditionSpec("vorbis", quality=v), "quality", 5.0),
    }


_ACCEPTED: dict[str, Callable[[float], Any]] = {
    "float": float,
    "np.float64": np.float64,
    "np.float32": np.float32,
    "np.float16": np.float16,
    "Fraction": Fraction,  # the audio side's own rule (tests/test_numbers_s28.py, test_audio_regressions.py)
}
_REFUSED: list[Any] = [True, np.bool_(True), Decimal("0.5"), "0.5", math.nan, math.inf, 1j, [0.5]]


@pytest.mark.parametrize("kind", list(_ACCEPTED))
@pytest.mark.parametrize("option", list(_levels()))
def test_every_audio_level_takes_the_same_kinds_as_a_plain_float(option: str, kind: str) -> None:
    make, field, value = _levels()[option]
    made = make(_ACCEPTED[kind](value))
    assert getattr(made, field) == value
    assert type(getattr(made, field)) is float, f"{option} kept a {type(getattr(made, field)).__name__}"
    assert made == make(value)


@pytest.mark.parametrize("bad", _REFUSED, ids=repr)
@pytest.mark.parametrize("option", list(_levels()))
def test_every_audio_level_refuses_the_same_kinds(option: str, bad: Any) -> None:
    make, field, _ = _levels()[option]
    with pytest.raises(InvalidInput, match=field.split(".")[-1]):
        make(bad)


@pytest.mark.parametrize("whole", [np.int64(7), np.uint16(7), 7], ids=repr)
def test_the_audio_side_integers_are_plain_ints(whole: Any) -> None:
    from musicstore.audio import ExportOptions, RenditionSpec
    from musicstore.audio.renditions import RenditionOptions

    spec = RenditionSpec("flac", compression_level=whole, sample_rate=whole * 8_000)
    assert (type(spec.compression_level), type(spec.sample_rate)) == (int, int)
    made: Any
    for made in (
        ExportOptions(dither_seed=whole),
        RenditionOptions(dither_seed=whole, max_attempts=whole - 3),
    ):
        assert type(made.dither_seed) is int and made.dither_seed == 7
    refused: list[Any] = [np.float64(7), Fraction(7), np.bool_(True), True, Decimal(7)]
    for bad in refused:
        with pytest.raises(InvalidInput, match="dither_seed"):
            ExportOptions(dither_seed=bad)
        with pytest.raises(InvalidInput, match="dither_seed"):
            RenditionOptions(dither_seed=bad)
        with pytest.raises(InvalidInput, match="compression_level"):
            RenditionSpec("flac", compression_level=bad)


def test_real_number_takes_a_fraction_only_when_asked() -> None:
    """The store's numbers refuse an exact fraction (tests/test_input_properties.py); the audio side's take
    it as its float: one helper, one switch."""
    assert validate.real_number(Fraction(1, 2)) is None
    assert validate.real_number(Fraction(1, 2), fractions=True) == 0.5
    assert validate.real_number(Fraction(10**400, 3), fractions=True) == math.inf
    assert validate.real_number(-Fraction(10**400, 3), fractions=True) == -math.inf
    for bad in (True, np.bool_(True), Decimal("0.5"), "0.5", None):
        assert validate.real_number(bad, fractions=True) is None


# --- numpy scalars in metadata: kept in their plain form ----------------------------------------------------


def _numpy_metadata() -> dict[str, Any]:
    return {
        "bpm": np.int64(90),
        "temperature": np.float32(0.7),
        "top_k": np.uint16(250),
        "guidance": np.float64(3.5),
        "stereo": np.bool_(True),
        "seed": np.int64(-(2**63)),
        "layers": [np.int8(1), np.float16(0.5), {"gain": np.float32(-6.0), "on": np.bool_(False)}],
        "plain": {"name": "lofi", "n": 3, "x": 0.25, "none": None, "ok": True},
    }


def _plain_form(value: Any) -> Any:
    """What a numpy scalar is in plain Python (``.item()``: exact), at any depth."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {key: _plain_form(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain_form(item) for item in value]
    return value


def _only_plain(value: Any) -> None:
    """Only the builtin types JSON reads back (dict, list, str, int, float, bool, None), at any depth."""
    assert type(value) in (dict, list, str, int, float, bool, type(None)), (value, type(value))
    if isinstance(value, dict):
        for item in value.values():
            _only_plain(item)
    elif isinstance(value, list):
        for item in value:
            _only_plain(item)


def _same(got: dict[str, Any], expected: dict[str, Any]) -> None:
    _only_plain(got)
    assert got == expected
    assert got["temperature"] == float(np.float32(0.7)) != 0.7  # the float32's own value, exactly


def test_create_generation_keeps_numpy_scalars_in_their_plain_form(store: Store) -> None:
    given = _numpy_metadata()
    expected = _plain_form(given)
    made = store.create_generation("p", model_name="m", duration_seconds=30, metadata=given)
    _same(made.metadata, expected)
    read = store.get_generation(made.id)
    assert read is not None
    _same(read.metadata, expected)
    assert given == _numpy_metadata()  # the caller's object untouched
    flat = store.create_generation("q", model_name="m", duration_seconds=30, metadata={"bpm": np.int64(90)})
    assert flat.metadata == {"bpm": 90} and type(flat.metadata["bpm"]) is int


def test_complete_and_merge_keep_numpy_scalars_in_their_plain_form(store: Store) -> None:
    job = store.create_generation("p", model_name="m", duration_seconds=30, metadata={"a": np.int32(1)})
    assert store.claim_next("w1", owner_limit=np.int64(2)) is not None
    size: Any = np.int64(10)
    done = store.complete_generation(
        job.id, file_path="a.wav", file_size_bytes=size, metadata=_numpy_metadata(), worker_id="w1"
    )
    expected = {"a": 1, **_plain_form(_numpy_metadata())}
    _same(done.metadata, expected)
    merged = store.merge_metadata(job.id, {"loudness": np.float32(-14.5), "peaks": {"n": np.uint8(3)}})
    expected |= {"loudness": -14.5, "peaks": {"n": 3}}
    _same(merged.metadata, expected)
    read = store.get_generation(job.id)
    assert read is not None
    _same(read.metadata, expected)


def test_export_generation_keeps_numpy_scalars_and_tags_a_numpy_seed(store: Store, tmp_path: Path) -> None:
    from mutagen.wave import WAVE

    from musicstore.audio.tags import read_wav_info
    from musicstore.recording import export_generation
    from tests.test_record import OPTIONS, audio_under, claimed, music

    job = claimed(store, metadata={"bpm": 90})
    extra = {"seed": np.int64(43), "temperature": np.float32(0.7), "cfg": [np.float16(3.0)]}
    recorded = export_generation(
        store, job, music(), root=tmp_path / "audio", options=OPTIONS, metadata=extra
    )
    expected = {"bpm": 90, "seed": 43, "temperature": float(np.float32(0.7)), "cfg": [3.0]}
    row = store.get_generation(job.id)
    assert row is not None
    for got in (recorded.generation.metadata, row.metadata):
        _only_plain(got)
        assert {key: got[key] for key in expected} == expected
    (path,) = audio_under(tmp_path / "audio")
    id3: Any = WAVE(path).tags  # type: ignore[no-untyped-call]
    assert id3["TXXX:SEED"].text == ["43"]  # the seed of the metadata, np.int64 or int
    assert read_wav_info(path)


def test_a_rendition_request_takes_numpy_settings_as_the_plain_ones(store: Store) -> None:
    """A rendition's settings follow the metadata rules: ``bitrate_kbps=np.int64(192)`` was refused
    ("must be a <class 'int'>") while ``sample_rate=np.int64(32000)`` beside it was taken."""
    job = store.create_generation("p", model_name="m", duration_seconds=30)
    assert store.claim_next("w1") is not None
    store.complete_generation(job.id, file_path="a.wav", file_size_bytes=10)
    plain = {"format": "mp3", "sample_rate": 32_000, "channels": 2, "bitrate_mode": "variable",
             "quality": 2.5, "bitrate_kbps": 192, "extra": [1, 0.5, True]}  # fmt: skip
    given = {**plain, "sample_rate": np.int64(32_000), "channels": np.uint8(2), "quality": np.float32(2.5),
             "bitrate_kbps": np.int64(192),
             "extra": [np.int16(1), np.float16(0.5), np.bool_(True)]}  # fmt: skip
    made = store.create_rendition(
        job.id, storage_key="a.mp3", settings=given, profile="streaming", target_lufs=-14.0,
        ceiling_dbtp=-1.0, file_size_bytes=100, duration_seconds=30.0, loudness_lufs=-14.5,
        true_peak_dbtp=-1.5, loudness_status="normalized", checksum="0" * 64,
    )  # fmt: skip
    assert (made.bitrate_kbps, made.quality) == (192, 2.5)
    assert type(made.bitrate_kbps) is int and type(made.quality) is float
    _only_plain(made.settings)
    same = store.get_rendition_by_settings(
        job.id, plain, profile="streaming", target_lufs=-14.0, ceiling_dbtp=-1.0
    )
    assert same is not None and same.id == made.id and same.settings == made.settings


def test_an_idempotent_create_agrees_with_its_numpy_metadata(store: Store) -> None:
    first = store.create_generation(
        "p", model_name="m", duration_seconds=30, metadata=_numpy_metadata(), idempotency_key="k"
    )
    again = store.create_generation(
        "p", model_name="m", duration_seconds=30, metadata=_numpy_metadata(), idempotency_key="k"
    )
    plain = store.create_generation(
        "p", model_name="m", duration_seconds=30, metadata=_plain_form(_numpy_metadata()), idempotency_key="k"
    )
    assert first.id == again.id == plain.id
    _same(again.metadata, _plain_form(_numpy_metadata()))


def test_an_async_store_keeps_numpy_scalars_in_their_plain_form(db_url: str) -> None:
    expected = _plain_form(_numpy_metadata())

    async def main() -> None:
        async with AsyncStore(db_url) as store:
            job = await store.create_generation(
                "p", model_name="m", duration_seconds=30, metadata=_numpy_metadata()
            )
            _same(job.metadata, expected)
            assert await store.claim_next("w1") is not None
            done = await store.complete_generation(
                job.id,
                file_path="a.wav",
                file_size_bytes=10,
                metadata={"extra": np.float32(0.5)},
                worker_id="w1",
            )
            _same(done.metadata, expected | {"extra": 0.5})
            read = await store.get_generation(job.id)
            assert read is not None
            _same(read.metadata, expected | {"extra": 0.5})

    asyncio.run(main())


_STILL_REFUSED: dict[str, Any] = {
    "nan32": np.float32("nan"),
    "inf64": np.float64("inf"),
    "-inf16": np.float16("-inf"),
    "uint64 beyond int64": np.uint64(2**63),
    "array": np.array([1, 2]),
    "0-d array": np.array(1.5),
    "complex": np.complex64(1),
    "Fraction": Fraction(1, 2),
    "Decimal": Decimal("0.5"),
    "tuple": (np.int64(1),),
    "nested nan": {"a": [np.float32("nan")]},
    "datetime64": np.datetime64("2026-01-01"),
}


@pytest.mark.parametrize("bad", list(_STILL_REFUSED))
def test_metadata_still_refuses_what_json_cannot_hold(store: Store, bad: str) -> None:
    with pytest.raises(InvalidInput, match=r"metadata\['x'\]"):
        store.create_generation("p", model_name="m", duration_seconds=30, metadata={"x": _STILL_REFUSED[bad]})
    job = store.create_generation("p", model_name="m", duration_seconds=30)
    with pytest.raises(InvalidInput, match=r"metadata\['x'\]"):
        store.merge_metadata(job.id, {"x": _STILL_REFUSED[bad]})


def test_a_numpy_float_beyond_a_float_is_refused_not_rounded() -> None:
    """JSON holds a float64: a ``np.longdouble`` that no float equals would come back another number."""
    tenth = np.longdouble(1) / np.longdouble(10)
    if float(tenth) == tenth:  # pragma: no cover - a platform whose long double is a double
        pytest.skip("long double is double here")
    with pytest.raises(InvalidInput, match="float"):
        validate.metadata({"x": tenth})
    assert validate.metadata({"x": np.longdouble(0.5)}) == '{"x":0.5}'


def test_the_same_messages_for_numpy_as_for_plain_numbers() -> None:
    for plain, numpy in ((math.nan, np.float32("nan")), (2**63, np.uint64(2**63))):
        with pytest.raises(InvalidInput) as plain_error:
            validate.metadata({"x": plain})
        with pytest.raises(InvalidInput) as numpy_error:
            validate.metadata({"x": numpy})
        assert str(plain_error.value).split(";")[-1] == str(numpy_error.value).split(";")[-1]
