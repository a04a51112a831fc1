"""The prompt operations: counting a prompt's use, finding a prompt, the most used ones."""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

from .. import validate
from ..errors import DatabaseError
from ..models import Prompt, RowReader, prompt_digest
from .steps import NOW, Call, Params, Steps, reads_all, reads_one, writer

R = TypeVar("R")

PROMPT = Prompt.reader
"""Rows of ``prompts`` as ``Prompt`` objects."""


@writer
def track_prompt_usage(prompt: str) -> Steps[Prompt]:
    """Count one use of a prompt (inserting it on first use); ``create_generation`` does this itself."""
    _, tracked = yield from track_prompt(validate.prompt(prompt), (yield NOW), PROMPT)
    return tracked


def digest_taken() -> DatabaseError:
    """The error for a prompt whose digest another text holds."""
    return DatabaseError(
        "the prompts table holds another text under this prompt's SHA-256 digest: a row was written "
        "outside musicstore with a wrong digest; fix or delete that row"
    )


def track_prompt(text: str, now: datetime, rows: RowReader[R]) -> Steps[tuple[bytes, R]]:
    """Count one use of a validated prompt text: its digest (what generations reference) and its row, as
    ``rows`` reads it."""
    digest = prompt_digest(text)
    tracked = yield Call("track_prompt", {"digest": digest, "text": text, "now": now}, rows)
    if tracked is None:  # the upsert updates only a row with the same text
        raise digest_taken()
    return digest, tracked


@reads_one("get_prompt_by_text", PROMPT)
def get_prompt_by_text(prompt: str) -> Params:
    """The prompt with exactly this text, or None."""
    text = validate.prompt(prompt)
    return {"digest": prompt_digest(text), "text": text}


@reads_all("most_used_prompts", PROMPT)
def get_most_used_prompts(limit: int = 10) -> Params:
    """The most used prompts, most used first."""
    return {"limit": validate.integer(limit, "limit", 1, validate.MAX_PAGE)}
