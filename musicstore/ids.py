"""Generation ids: time-ordered UUIDs (version 7, RFC 9562) as canonical lowercase text.

An id starts with its Unix millisecond, so inserts land at the right edge of the primary-key index (dense
pages, good cache locality) instead of at random places. Within one process ids are strictly increasing,
also within a millisecond and if the clock steps back (RFC 9562 §6.2, method 2: the 74 random bits of the
previous id plus a random increment), so jobs enqueued at the same ``created_at`` are claimed in the order
they were created. Ids from different processes in the same millisecond order at random.
"""

from __future__ import annotations

import os
import re
import threading
import time

from .errors import InvalidInput

_CANONICAL = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_RANDOM_BITS = 74
_B_BITS = 62  # of the 74, the ones after the variant; the other 12 sit after the version
_clock_ns = time.time_ns


def _fresh_random() -> int:
    """74 random bits with the top one 0: room for the increments of ids later in the same millisecond."""
    return int.from_bytes(os.urandom(10), "big") >> (80 - _RANDOM_BITS + 1)


class _Sequence:
    """The last id's millisecond and random bits, so the next one sorts after it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.millis = -1
        self.random = 0

    def next(self) -> tuple[int, int]:
        millis = _clock_ns() // 1_000_000
        with self.lock:
            if millis > self.millis:
                random = _fresh_random()
            else:
                millis = self.millis
                random = self.random + 1 + (int.from_bytes(os.urandom(4), "big") >> 1)
                if random >> _RANDOM_BITS:  # 2^42 ids in one millisecond: borrow the next one
                    millis, random = millis + 1, _fresh_random()
            self.millis, self.random = millis, random
        return millis, random

    def forget(self) -> None:
        """After a fork: the child draws fresh random bits instead of continuing its parent's."""
        self.lock = threading.Lock()
        self.millis, self.random = -1, 0


_sequence = _Sequence()
os.register_at_fork(after_in_child=_sequence.forget)


def new_id() -> str:
    """A new UUIDv7: 48-bit Unix milliseconds, version, 74 bits that are random or increase the last id's."""
    millis, random = _sequence.next()
    value = (
        (millis & 0xFFFF_FFFF_FFFF) << 80
        | 0x7 << 76  # version 7
        | (random >> _B_BITS) << 64
        | 0x2 << 62  # RFC 9562 variant
        | (random & ((1 << _B_BITS) - 1))
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def check_id(value: object) -> str:
    """Return ``value`` if it is a UUID in canonical lowercase text, else raise InvalidInput."""
    if isinstance(value, str) and _CANONICAL.fullmatch(value):
        return value
    raise InvalidInput(
        f"generation id must be a UUID in canonical lowercase form "
        f"(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx), got {value!r}"
    )
