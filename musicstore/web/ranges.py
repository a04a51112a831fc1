"""The audio files' responses: Starlette's ``FileResponse`` with the Range headers that RFC 9110 (14.2) tells
a server to ignore removed before it reads them (it answered them 400).

A Range of a unit other than ``bytes`` MUST be ignored, and one whose ranges are not valid syntax (``bytes=``,
``bytes=abc``, a last position before the first) may be: both are served the whole file, 200. A valid
``bytes`` range is Starlette's to serve (206) or to refuse as unsatisfiable (416).
"""

from __future__ import annotations

import re

from starlette.datastructures import Headers
from starlette.responses import FileResponse
from starlette.types import Receive, Scope, Send

_SPEC = re.compile(r"(?:(\d{1,100})-(\d{0,100})|-\d{1,100})\Z")
"""A range-spec; a position of over 100 digits is ignored too (int() refuses over 4,300: Starlette's 400)."""


def valid_bytes_range(value: str) -> bool:
    """Whether ``value`` is a ``bytes`` ranges-specifier of RFC 9110 (14.1.1): its unit (any case), then one
    or more ``first-last``, ``first-`` or ``-suffix`` separated by commas, each last position (if any) not
    before its first."""
    unit, equals, ranges = value.partition("=")
    if not equals or unit.strip().lower() != "bytes":
        return False
    specs = [spec.strip(" \t") for spec in ranges.split(",")]
    found = [_SPEC.match(spec) for spec in specs if spec]  # the list syntax allows empty elements
    return bool(found) and all(
        match is not None and (not match[2] or int(match[1]) <= int(match[2])) for match in found
    )


class AudioFileResponse(FileResponse):
    """A ``FileResponse`` that serves the whole file for a Range header RFC 9110 says to ignore."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        value = Headers(scope=scope).get("range")
        if value is not None and not valid_bytes_range(value):
            kept = [(name, raw) for name, raw in scope["headers"] if name.lower() != b"range"]
            scope = {**scope, "headers": kept}
        await super().__call__(scope, receive, send)
