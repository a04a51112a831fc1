"""The types of the command's arguments: durations, sizes, positive counts, owner limits, page sizes,
non-empty text.

Each raises ``argparse.ArgumentTypeError``, which argparse turns into a usage error (exit code 2).
"""

from __future__ import annotations

import argparse
import re
from datetime import timedelta
from fractions import Fraction

from ..ops.claims import MAX_OWNER_LIMIT
from ..validate import MAX_PAGE

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_SIZE_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_MAX_BYTES = 2**63 - 1
"""The largest size (or count) the library takes (a 64-bit integer, as the databases store byte counts)."""
_MAX_MICROSECONDS = timedelta.max // timedelta(microseconds=1)
_MAX_WHOLE_DIGITS = 40
"""A number whose whole part has more digits is out of range for both."""
_MAX_LENGTH = 1000
"""A longer number (a fraction of a thousand digits) is not read (int() refuses 4,300 digits)."""


def _exact(number: str, unit: int) -> Fraction | None:
    """``number`` (digits, maybe a fraction) times ``unit``, exactly: a float rounded ``0.5`` to 0 bytes and
    the last microseconds of a long duration away. None when it has more digits than any value in range."""
    if len(number.partition(".")[0].lstrip("0")) > _MAX_WHOLE_DIGITS or len(number) > _MAX_LENGTH:
        return None
    return Fraction(number) * unit


def _typed(text: str) -> str:
    """``text`` without the blanks around it, in lower case, if it is printable ASCII; else "", the form of
    no value. (``str.lower``, ``\\d`` and ``\\s`` read more: the Kelvin sign as ``k``, ``٥`` as 5, U+3000 as
    a space.)"""
    stripped = text.strip()
    return stripped.lower() if text.isascii() and stripped.isprintable() else ""


def fraction(text: str) -> float:
    """A number such as ``0.5`` or ``.25`` (``requeue-expired --jitter``; its range is the library's to
    check): ``float`` read ``0_0.2_5``, ``25e-2``, ``nan`` and other scripts' digits too."""
    plain = _typed(text)
    if not re.fullmatch(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+", plain):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number such as 0.5")
    return float(plain)


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` (one number, one unit)."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?) *([smhdw])", _typed(text))
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration; use e.g. 30d, 12h, 90m, 45s or 2w")
    micros = _exact(match[1], _DURATION_UNITS[match[2]] * 10**6)
    if micros is None or micros > _MAX_MICROSECONDS:
        raise argparse.ArgumentTypeError(f"{text!r} is too long a duration")
    if micros.denominator != 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of microseconds")
    return timedelta(microseconds=int(micros))


def lock_timeout(text: str) -> timedelta:
    """``migrate --lock-timeout``: a duration of at most a day (``migrate``'s ``lock_timeout``)."""
    wait = parse_duration(text)
    if wait > timedelta(days=1):
        raise argparse.ArgumentTypeError(f"{text!r} is longer than the longest wait, 1d")
    return wait


def parse_size(text: str) -> int:
    """Bytes: ``5000``, ``500MB``, ``50GB``, ``1.5TB`` (powers of 1000) or ``2GiB`` (powers of 1024)."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?) *([kmgt]?)(i?)(b?)", _typed(text))
    if match is None or (match[3] and not match[2]):
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; use e.g. 5000, 500MB, 50GB or 2GiB")
    unit = 1024 ** "kmgt".index(match[2]) * 1024 if match[3] else _SIZE_UNITS[match[2]]
    size = _exact(match[1], unit)
    if size is None or size > _MAX_BYTES:
        raise argparse.ArgumentTypeError(f"{text!r} is too large a size (at most {_MAX_BYTES} bytes)")
    if size.denominator != 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of bytes")
    return int(size)


def _whole(text: str, most: int, what: str) -> int:
    """ASCII digits only (``int()`` reads other scripts' digits too: ``٥`` as 5)."""
    digits = text.strip().removeprefix("+")
    value = int(digits) if len(digits) < 4000 and re.fullmatch(r"[0-9](?:_?[0-9])*", digits) else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    if value > most:
        raise argparse.ArgumentTypeError(f"{text!r} is more than the largest {what}, {most}")
    return value


def positive_int(text: str) -> int:
    """1 to the largest count the library takes (a 64-bit integer): either side is a usage error."""
    return _whole(text, _MAX_BYTES, "count")


def owner_limit(text: str) -> int | None:
    """``set-owner-limit``'s N: 0 (a paused key) to the library's largest limit, or ``none`` (back to the
    claim's ``owner_limit``)."""
    if text.strip() == "none":
        return None
    value = int(text) if re.fullmatch(r"[0-9]{1,8}", text.strip()) else -1
    if not 0 <= value <= MAX_OWNER_LIMIT:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a limit: a whole number from 0 (paused) to {MAX_OWNER_LIMIT}, or none"
        )
    return value


def page_size(text: str) -> int:
    """A ``--limit``: 1 to the library's largest page (a bad value is a usage error, like 0)."""
    return _whole(text, MAX_PAGE, "page")


def not_empty(text: str) -> str:
    """``--database ""`` (an unset shell variable) is a mistake, not a request for the default."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty (leave the option out for the default)")
    return text


def given(text: str) -> str:
    """A positional argument (``backup DEST``, ``restore BACKUP``): not empty, as ``not_empty``, but it has
    no default to fall back to."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def folder(text: str) -> str:
    """A folder option (``--quarantine``): not empty, as ``not_empty`` (``Path("")`` is the working
    directory). Kept as typed, for the library reads a ``file:///PATH`` and refuses another scheme: as a
    ``Path``, ``s3://bucket/q`` was ``s3:/bucket/q``, a local folder named ``s3:``."""
    return not_empty(text)


def sample_rate(text: str) -> int:
    """A sample rate in Hz: ``44100``, or in kHz ``44.1k``; a whole number of Hz in 8–384 kHz."""
    found = re.fullmatch(r"([0-9]{1,6})(?:\.([0-9]{1,3}))?(k?)", _typed(text))
    hz = -1
    if found is not None and (found[3] or not found[2]):
        whole, part = int(found[1]), int((found[2] or "").ljust(3, "0"))
        hz = whole * 1000 + part if found[3] else whole
    if not 8_000 <= hz <= 384_000:
        raise argparse.ArgumentTypeError(
            f"a sample rate in Hz (8000–384000) such as 48000 or 44.1k, not {text!r}"
        )
    return hz


def bitrate(text: str) -> int:
    """A bitrate in kbps: ``192`` or ``192k``."""
    digits = _typed(text).removesuffix("k")
    if not re.fullmatch(r"[0-9]{1,5}", digits) or not 1 <= int(digits) <= 10_000:
        raise argparse.ArgumentTypeError(f"a bitrate in kbps such as 192 or 192k, not {text!r}")
    return int(digits)


def rendition_format(text: str) -> str:
    """A rendition format (``render --format``) in any case, as its canonical name: the library's own
    ``codecs.format_name``, whose error names the formats."""
    from ..audio.codecs import format_name  # numpy and soundfile: loaded by the commands that render only
    from ..errors import InvalidInput

    try:
        return format_name(text)
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
