"""Loudness profiles by name: the level a master or a rendition is brought to and the ceiling it keeps.

``streaming`` (−14 LUFS, −1 dBTP: the playback level of the large streaming services), ``podcast`` (−16, −1),
``broadcast`` (EBU R128: −23 LUFS, −1 dBTP), or a custom :class:`LoudnessProfile`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from musicstore import validate
from musicstore.errors import InvalidInput, shown

if TYPE_CHECKING:
    from musicstore.audio.export import ExportOptions

TARGET_RANGE = (-70.0, 0.0)  # (exclusive, inclusive) LUFS, as ExportOptions
CEILING_RANGE = (-20.0, 0.0)  # dBTP, inclusive
TOLERANCE_RANGE = (0.0, 3.0)  # (exclusive, inclusive) LU


def _number(value: object, what: str) -> float:
    """``value`` as a float: numpy numbers too, as ``ExportOptions`` takes them; bools and ints beyond any
    float are refused."""
    number = validate.real_number(value, fractions=True)
    if number is None or not math.isfinite(number):
        raise InvalidInput(f"{what} must be a finite number, got {shown(value)}")
    return number


@dataclass(frozen=True)
class LoudnessProfile:
    """A loudness target (LUFS), a true-peak ceiling (dBTP) and how far from the target still counts as
    reached (LU). Checked when made: a bad value raises ``InvalidInput``."""

    target_lufs: float
    ceiling_dbtp: float = -1.0
    tolerance_lu: float = 0.5
    name: str = "custom"

    def __post_init__(self) -> None:
        target = _number(self.target_lufs, "target_lufs")
        ceiling = _number(self.ceiling_dbtp, "ceiling_dbtp")
        tolerance = _number(self.tolerance_lu, "tolerance_lu")
        for name, value in (("target_lufs", target), ("ceiling_dbtp", ceiling), ("tolerance_lu", tolerance)):
            # numpy numbers as JSON-ready floats (a rendition request key holds them); int, float as given
            given = getattr(self, name)
            if type(given) is not int and type(given) is not float:  # np.float64 too: a plain float
                object.__setattr__(self, name, value)
        if not TARGET_RANGE[0] < target <= TARGET_RANGE[1]:
            raise InvalidInput(f"target_lufs {target} is outside (−70, 0] LUFS")
        if not CEILING_RANGE[0] <= ceiling <= CEILING_RANGE[1]:
            raise InvalidInput(f"ceiling_dbtp {ceiling} is outside [−20, 0] dBTP")
        if not TOLERANCE_RANGE[0] < tolerance <= TOLERANCE_RANGE[1]:
            raise InvalidInput(f"tolerance_lu {tolerance} is outside (0, 3] LU")
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise InvalidInput(f"a profile name must be a short identifier, got {shown(self.name)}")

    def export_options(self, **overrides: Any) -> ExportOptions:
        """``ExportOptions`` for a master at this profile (target and ceiling; ``overrides`` for the rest).

        The master's own tolerance (default 0.1 LU) is kept unless overridden: it is tighter than a
        rendition's, since nothing lossy follows it.
        """
        from dataclasses import fields

        from musicstore.audio.export import ExportOptions

        allowed = {f.name for f in fields(ExportOptions)} - {"target_lufs", "ceiling_dbtp"}
        unknown = sorted(set(overrides) - allowed)
        if unknown:
            raise InvalidInput(
                f"export_options() takes {sorted(allowed)}, not {unknown} (the profile sets target, ceiling)"
            )
        return ExportOptions(target_lufs=self.target_lufs, ceiling_dbtp=self.ceiling_dbtp, **overrides)

    def as_metadata(self) -> dict[str, Any]:
        """JSON-ready: name, target, ceiling, tolerance."""
        return {
            "profile": self.name,
            "target_lufs": self.target_lufs,
            "ceiling_dbtp": self.ceiling_dbtp,
            "tolerance_lu": self.tolerance_lu,
        }


PROFILES: dict[str, LoudnessProfile] = {
    "streaming": LoudnessProfile(-14.0, -1.0, name="streaming"),
    "podcast": LoudnessProfile(-16.0, -1.0, name="podcast"),
    "broadcast": LoudnessProfile(-23.0, -1.0, name="broadcast"),  # EBU R128
}
"""The named profiles."""


def get_profile(profile: str | LoudnessProfile) -> LoudnessProfile:
    """The profile named ``profile`` (``streaming``, ``podcast``, ``broadcast``), or ``profile`` itself."""
    if isinstance(profile, LoudnessProfile):
        return profile
    if isinstance(profile, str) and profile in PROFILES:
        return PROFILES[profile]
    shown = repr(profile) if isinstance(profile, str) and len(profile) <= 40 else type(profile).__name__
    raise InvalidInput(
        f"unknown loudness profile {shown}; use one of {sorted(PROFILES)} "
        "or a LoudnessProfile(target_lufs=..., ceiling_dbtp=...)"
    )


def canonical_profile(profile: LoudnessProfile) -> LoudnessProfile:
    """The named profile whose numbers (target, ceiling, tolerance) equal ``profile``'s, else ``profile``:
    what a rendition is recorded under (the same numbers make the same audio, whatever the name)."""
    numbers = (profile.target_lufs, profile.ceiling_dbtp, profile.tolerance_lu)
    for named in PROFILES.values():
        if (named.target_lufs, named.ceiling_dbtp, named.tolerance_lu) == numbers:
            return named
    return profile
