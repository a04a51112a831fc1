"""Numbers handled alike across the public API (session 29), after session 28's numpy numbers
(tests/test_numbers_s28.py).

- A claim wait's ``owner_limit`` given as ``np.int64(2)`` is in the herd of the waits with ``owner_limit=2``
  (it made a herd of its own: every notification woke each such wait).
- The audio side's numbers (``ExportOptions``, ``LoudnessProfile``, ``RenditionSpec``, ``RenditionOptions``,
  ``as_audio``'s scale, the synthesizers) are checked by ``validate.real_number(value, fractions=True)`` and
  ``validate.whole_number``: one set of kinds, each kept as a plain float or int (an ``np.float64``, a float
  subclass, was kept as it was by ``LoudnessProfile``, ``RenditionOptions`` and ``RenditionSpec.quality``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from musicstore import validate, waiting
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
