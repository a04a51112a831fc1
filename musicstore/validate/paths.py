"""The check of a local path argument (a file or a folder on this machine), shared by every function that
takes one: the audio files, the local file store, maintenance's roots, backups."""

from __future__ import annotations

import os

from ..errors import InvalidInput

NAME_MAX_BYTES = 255
"""The longest folder or file name a path may hold, in bytes: Linux's ``NAME_MAX`` (every file system)."""
PATH_MAX_BYTES = 4_095
"""The longest path the OS takes, in bytes (Linux's ``PATH_MAX``, 4,096 with the final NUL)."""


def os_path(value: object, what: str, *, empty: bool = False) -> str:
    """``value``, a local path given as a str or an ``os.PathLike`` giving one, as its text; ``InvalidInput``
    naming ``what`` for anything else (bytes, an ``__fspath__`` that raises or gives bytes), a NUL, a lone
    surrogate no file name holds (one ``os.fsdecode`` made of an undecodable byte is fine), a name over
    ``NAME_MAX_BYTES`` or a path over ``PATH_MAX_BYTES`` (the OS's ENAMETOOLONG, which ``Path.is_file`` and
    its kin raise rather than answer), or an empty path unless ``empty`` (``Path("")`` is the working
    directory). The path is never echoed: it may be long, and a mistyped URL in it may hold a secret."""
    if (
        type(value) is str
        and value
        and len(value) <= NAME_MAX_BYTES
        and value.isascii()
        and "\x00" not in value
    ):
        return value  # the common case: a short ASCII path, whose every name fits
    if not isinstance(value, str | os.PathLike):
        raise InvalidInput(f"{what} must be a path (a str or an os.PathLike), got {type(value).__name__}")
    try:
        text = os.fspath(value)
    except Exception as exc:  # an os.PathLike of the caller's whose __fspath__ fails
        raise InvalidInput(f"{what}: its __fspath__ raised {type(exc).__name__}") from None
    if not isinstance(text, str):
        raise InvalidInput(
            f"{what} must be a str path, got a {type(value).__name__} giving {type(text).__name__}"
        )
    if not text and not empty:
        raise InvalidInput(f"{what} is empty; give a path (the working directory is '.')")
    if "\x00" in text:
        raise InvalidInput(f"{what} contains a NUL character, which no path can hold")
    try:
        encoded = os.fsencode(text)
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"{what} is not valid as a path (a lone surrogate at {exc.start})") from None
    if len(encoded) > PATH_MAX_BYTES:
        raise InvalidInput(
            f"{what} is {len(encoded):,} bytes long; a path is at most {PATH_MAX_BYTES:,} bytes"
        )
    longest = max(len(name) for name in encoded.split(b"/"))
    if longest > NAME_MAX_BYTES:
        raise InvalidInput(
            f"{what} holds a name of {longest:,} bytes; a folder or file name is at most "
            f"{NAME_MAX_BYTES} bytes"
        )
    return text
