"""Generation ids: time-ordered UUIDs (version 7, RFC 9562) as canonical lowercase text.

An id starts with its Unix millisecond, so inserts land at the right edge of the primary-key index (dense
pages, good cache locality) instead of at random places. Within one process ids are strictly increasing,
also within a millisecond and if the clock steps back (RFC 9562 §6.2, method 2: the 74 random bits of the
previous id plus a random increment), so jobs enqueued at the same ``created_at`` are claimed in the order
they were created. Ids from different processes in the same millisecond order at random.

The random bits come from ``os.urandom`` (the operating system's CSPRNG, as RFC 9562 §6.9 asks), drawn
``POOL_BYTES`` at a time and handed out in order, and the text is made from the 80 bits after the
millisecond (whose prefix is made once per millisecond): one system call per few hundred ids instead of one
per id (measured: ``new_id`` 4.1 → 2.6 µs, fastest of 7 by thread CPU time). A forked child throws its
parent's unread bytes away (it would otherwise hand out the same bits as its parent), as it forgets the
last id.
"""

from __future__ import annotations

import os
import re
import threading
import time

from .errors import InvalidInput, shown

_CANONICAL = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_RANDOM_BITS = 74
_B_BITS = 62  # of the 74, the ones after the variant; the other 12 sit after the version
_B_MASK = (1 << _B_BITS) - 1
_VARIANT = 0x2 << _B_BITS  # RFC 9562 variant, above the 62 bits of rand_b
_VERSION = 0x7 << 76  # of the 80 bits after the millisecond: version 7, rand_a, variant, rand_b
_clock_ns = time.time_ns
POOL_BYTES = 4096
"""How many random bytes one ``os.urandom`` call draws for the ids that follow."""


class _Sequence:
    """The last id's millisecond and random bits, so the next one sorts after it, and the random bytes not
    handed out yet."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.millis = -1
        self.random = 0
        self.prefix = ""
        """The id's text up to its version digit for ``millis``: ``xxxxxxxx-xxxx-``."""
        self.pool = b""
        self.at = POOL_BYTES
        """The next unread byte of ``pool`` (``POOL_BYTES``: none left, the next id draws a new pool)."""

    def next(self) -> str:
        """The next id's text."""
        millis = _clock_ns() // 1_000_000
        with self.lock:
            at = self.at
            if at > POOL_BYTES - 10:
                self.pool, at = os.urandom(POOL_BYTES), 0
            if millis > self.millis:
                # 74 random bits with the top one 0: room for the increments of later ids in this millisecond
                random = int.from_bytes(self.pool[at : at + 10], "big") >> 7
                self.at = at + 10
                self.prefix = _prefix(millis)
            else:
                millis = self.millis
                random = self.random + 1 + (int.from_bytes(self.pool[at : at + 4], "big") >> 1)
                self.at = at + 4
                if random >> _RANDOM_BITS:  # 2^42 ids in one millisecond: borrow the next one
                    millis += 1
                    random = int.from_bytes(os.urandom(10), "big") >> 7
                    self.prefix = _prefix(millis)
            self.millis, self.random = millis, random
            h = f"{_VERSION | (random >> _B_BITS) << 64 | _VARIANT | (random & _B_MASK):020x}"
            return f"{self.prefix}{h[:4]}-{h[4:8]}-{h[8:]}"

    def forget(self) -> None:
        """After a fork: the child draws fresh random bits instead of continuing its parent's."""
        self.lock = threading.Lock()
        self.millis, self.random, self.prefix = -1, 0, ""
        self.pool, self.at = b"", POOL_BYTES


def _prefix(millis: int) -> str:
    h = f"{millis & 0xFFFF_FFFF_FFFF:012x}"
    return f"{h[:8]}-{h[8:]}-"


_sequence = _Sequence()


def _forget() -> None:
    _sequence.forget()


os.register_at_fork(after_in_child=_forget)


def new_id() -> str:
    """A new UUIDv7: 48-bit Unix milliseconds, version, 74 bits that are random or increase the last id's."""
    return _sequence.next()


def check_id(value: object) -> str:
    """Return ``value`` if it is a UUID in canonical lowercase text, else raise InvalidInput."""
    if isinstance(value, str) and _CANONICAL.fullmatch(value):
        return value
    raise InvalidInput(
        f"generation id must be a UUID in canonical lowercase form "
        f"(xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx), got {shown(value)}"
    )
