"""The bounded caches of the far part's kernel spectra and kernels (:mod:`musicstore.audio.farfield` holds
the caches themselves), and the count of spectra made and not cached (for ``keep_spectrum``)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any


class _BoundedCache:
    """The last few values by key, at most ``limit`` bytes in all: a value larger than that is not kept
    (a long clip's spectrum: 63 MB for 10 minutes at 48 kHz, a quarter of the stereo clip, would stay
    resident after its export), and the oldest go first to make room."""

    def __init__(self, entries: int, limit: int) -> None:
        self.entries, self.limit = entries, limit
        self.values: OrderedDict[tuple[int, ...], tuple[Any, int]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple[int, ...]) -> Any:
        with self.lock:
            if key not in self.values:
                return None
            self.values.move_to_end(key)
            return self.values[key][0]

    def put(self, key: tuple[int, ...], value: Any, nbytes: int) -> bool:
        """Keep ``value`` (the oldest values go to make room); False where it is too large to be kept."""
        with self.lock:
            self.values.pop(key, None)
            if nbytes > self.limit:
                return False
            self.values[key] = (value, nbytes)
            while len(self.values) > self.entries or self.held() > self.limit:
                self.values.popitem(last=False)
            return True

    def held(self) -> int:
        return sum(nbytes for _, nbytes in self.values.values())

    def clear(self) -> None:
        with self.lock:
            self.values.clear()


_MISSES_KEPT = 16  # lengths whose uncached spectra keep_spectrum remembers


class _Misses:
    """How often each of the last few keys' spectra was made and not cached (``keep=False``)."""

    def __init__(self) -> None:
        self.counts: OrderedDict[tuple[int, ...], int] = OrderedDict()
        self.lock = threading.Lock()

    def add(self, key: tuple[int, ...]) -> None:
        with self.lock:
            self.counts[key] = self.counts.pop(key, 0) + 1
            while len(self.counts) > _MISSES_KEPT:
                self.counts.popitem(last=False)

    def recurs(self, key: tuple[int, ...]) -> bool:
        """Whether ``key``'s spectrum was made twice or more (its count is then dropped)."""
        with self.lock:
            if self.counts.get(key, 0) < 2:
                return False
            del self.counts[key]
            return True
