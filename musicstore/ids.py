"""Generation ids: time-ordered UUIDs (version 7, RFC 9562) as canonical lowercase text.

Ids made in the same millisecond share a prefix and later ones sort after earlier ones, so inserts land at
the right edge of the primary-key index (dense pages, good cache locality) instead of at random places.
"""

from __future__ import annotations

import os
import re
import time
import uuid

from .errors import InvalidInput

_CANONICAL = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def new_id() -> str:
    """A new UUIDv7: 48-bit Unix milliseconds, version, 74 random bits."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & 0xFFFF_FFFF_FFFF) << 80 | rand
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 9562 variant
    return str(uuid.UUID(int=value))


def check_id(value: object) -> str:
    """Return ``value`` if it is a UUID in canonical lowercase text, else raise InvalidInput."""
    if isinstance(value, str) and _CANONICAL.fullmatch(value):
        return value
    raise InvalidInput(
        f"generation id must be a UUID in canonical lowercase form "
        f"(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx), got {value!r}"
    )
