"""Hypothesis strategies for code built on musicstore. Each takes arguments that narrow what it draws.

>>> from hypothesis import HealthCheck, given, settings
>>> from musicstore.testing import strategies as ms
>>> @settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # one store for every example
... @given(request=ms.generation_requests(max_seconds=30))
... def test_enqueue(musicstore_store, request):
...     musicstore_store.create_generation(**request)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from hypothesis import strategies as st

from .. import validate
from ..errors import InvalidInput
from ..ids import new_id
from ..models import Generation, Status
from ..validate import MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

SAMPLE_RATES = (16_000, 22_050, 24_000, 32_000, 44_100, 48_000)
"""The rates text-to-music models produce."""
MODEL_NAMES = ("musicgen-small", "musicgen-medium", "musicgen-large", "stable-audio-open", "audioldm2")

_text_alphabet = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")


def prompts(*, min_size: int = 1, max_size: int = 500) -> st.SearchStrategy[str]:
    """Prompt text a store accepts: any script, emoji, quotes, SQL; not blank; no NUL or lone surrogates.

    From ``min_size`` to ``max_size`` characters (a length over 1,000: a drawn phrase repeated to the drawn
    length, as hypothesis draws no text that long, so that the longest are drawn too); narrowing outside
    what ``create_generation``
    accepts (more than ``MAX_PROMPT_CHARS``, no room for a non-blank prompt, ``min_size`` above
    ``max_size``) raises InvalidInput."""
    high = validate.integer(max_size, "max_size", 1, validate.MAX_PROMPT_CHARS)
    low = validate.integer(min_size, "min_size", 0, validate.MAX_PROMPT_CHARS)
    if low > high:
        raise InvalidInput(f"min_size ({min_size!r}) must not exceed max_size ({max_size!r})")
    text = st.text(alphabet=_text_alphabet, min_size=low, max_size=min(high, _LONG_PROMPT))
    short = text.filter(lambda t: t.strip() != "")
    if high <= _LONG_PROMPT:
        return short
    # hypothesis draws no text that long (its health check; over 8,192 never), nor much over 4,000 at all
    long = st.builds(_repeated, _phrases, st.integers(min_value=max(low, _LONG_PROMPT + 1), max_value=high))
    return long if low > _LONG_PROMPT else short | long


_LONG_PROMPT = 1_000
"""The longest prompt drawn as one text; a longer one is a drawn phrase repeated to a drawn length."""
_phrases = st.text(alphabet=_text_alphabet, min_size=1, max_size=64).filter(lambda t: t.strip() != "")


def _repeated(phrase: str, length: int) -> str:
    """``phrase`` repeated to exactly ``length`` characters (at least one whole phrase: never blank)."""
    return (phrase * -(-length // len(phrase)))[:length]


def _keys(max_size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=_text_alphabet, max_size=max_size)


def json_values(*, max_leaves: int = 20) -> st.SearchStrategy[Any]:
    """Any JSON value a store accepts: finite floats, 64-bit ints, str keys, text without NUL or lone
    surrogates. At most ``max_leaves`` (>= 1) scalars; another ``max_leaves`` raises InvalidInput."""
    leaves = validate.integer(max_leaves, "max_leaves", 1)
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**63), max_value=2**63 - 1)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(alphabet=_text_alphabet, max_size=40)
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_keys(12), inner, max_size=5),
        max_leaves=leaves,
    )


def metadata(*, max_keys: int = 8) -> st.SearchStrategy[dict[str, Any]]:
    """A metadata object: a JSON object of any shape, with at most ``max_keys`` (>= 0) keys; another
    ``max_keys`` raises InvalidInput."""
    keys = validate.integer(max_keys, "max_keys", 0)
    return st.dictionaries(_keys(20), json_values(), max_size=keys)


def generation_requests(
    *,
    min_seconds: float | None = None,
    max_seconds: float = 300.0,
    sample_rates: Iterable[int] | int = SAMPLE_RATES,
    channels: Iterable[int] | int = (1, 2),
    model_names: Iterable[str] | str = MODEL_NAMES,
    prompt: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[dict[str, Any]]:
    """Keyword arguments for ``store.create_generation(**request)``: a valid, realistic request.

    Durations are from ``min_seconds`` (1 s, or ``max_seconds`` when that is shorter) to ``max_seconds``.
    ``sample_rates``, ``channels`` and ``model_names`` take one value or several. Narrowing outside what
    ``create_generation`` accepts raises InvalidInput (durations in
    (0, 86,400] s, integer rates and channel counts in range, non-empty model names)."""
    low, high = _span(min_seconds, max_seconds, 1.0, positive=True, limit=validate.MAX_DURATION_SECONDS)
    rates = _each(sample_rates, validate.sample_rate, "sample_rates")
    counts = _each(channels, validate.channels, "channels")
    if not rates:
        raise InvalidInput(
            f"sample_rates must name at least one rate within {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz"
        )
    if not counts:
        raise InvalidInput(f"channels must name at least one count within 1-{MAX_CHANNELS}")
    if prompt is not None and not isinstance(prompt, st.SearchStrategy):
        raise InvalidInput(
            "prompt must be a strategy of prompts (e.g. prompts(max_size=50), or st.just(...)), "
            f"got {prompt!r:.80}"
        )
    names = sorted({str(validate.name(n, "model_names")) for n in _several(model_names, "model_names")})
    if not names:
        raise InvalidInput("model_names must name at least one model")
    return st.fixed_dictionaries(
        {
            "prompt": prompt if prompt is not None else prompts(max_size=300),
            "model_name": st.sampled_from(names),
            "duration_seconds": st.floats(min_value=low, max_value=high),
            "sample_rate": st.sampled_from(rates),
            "channels": st.sampled_from(counts),
            "metadata": metadata(max_keys=5),
        }
    )


def _several(values: object, what: str) -> list[object]:
    """``values`` as a list: one value (a str, a number) or several (any other iterable); InvalidInput for
    anything else. A str is one value, never its letters."""
    if isinstance(values, str | bytes | int | float):
        return [values]
    try:
        return list(values)  # type: ignore[call-overload,no-any-return]
    except TypeError:
        raise InvalidInput(f"{what} must be one value or several (a list), got {values!r:.80}") from None


def _each(values: Iterable[object] | object, check: Callable[[object], int], what: str) -> list[int]:
    """The distinct ``values`` (one, or several), sorted, each passed through ``check``; InvalidInput naming
    ``what``."""
    try:
        return sorted({check(value) for value in _several(values, what)})
    except InvalidInput as exc:
        raise InvalidInput(f"{what}: {exc}") from None


def _span(
    min_seconds: object, max_seconds: object, default: float, *, positive: bool, limit: float | None = None
) -> tuple[float, float]:
    """``(min_seconds, max_seconds)`` checked: finite numbers, > 0 (``positive``) or >= 0, at most
    ``limit``, min <= max; InvalidInput otherwise. ``min_seconds=None`` is ``default``, or ``max_seconds``
    when that is less (narrowing ``max_seconds`` alone below the default minimum is not an error)."""
    high = validate.number(max_seconds, "max_seconds", positive=positive, high=limit)
    if min_seconds is None:
        return min(default, high), high
    low = validate.number(min_seconds, "min_seconds", positive=positive, high=limit)
    if low > high:
        raise InvalidInput(f"min_seconds ({min_seconds!r}) must not exceed max_seconds ({max_seconds!r})")
    return low, high


_EPOCH_2025 = datetime(2025, 1, 1, tzinfo=UTC)


OWNER_KEYS = ("alice", "bob", "team-7", "Ärztekammer", "租户-42")
"""The owner keys ``generations()`` draws most (besides none and any other name): a few tenants, each with
several jobs, so that rows share lanes as a real queue's do."""
STAGES = ("loading", "sampling", "decoding", "encoding")


def _names(max_size: int) -> st.SearchStrategy[str]:
    """Non-blank text of 1 to ``max_size`` characters a store takes as a name (no NUL or lone surrogate)."""
    return st.text(alphabet=_text_alphabet, min_size=1, max_size=max_size).filter(lambda t: t.strip() != "")


def _after(moment: datetime, most: timedelta) -> st.SearchStrategy[datetime]:
    """A moment from ``moment`` to ``moment + most``, to the microsecond."""
    micros = most // timedelta(microseconds=1)
    return st.integers(0, micros).map(lambda us: moment + timedelta(microseconds=us))


@st.composite
def _generation(
    draw: st.DrawFn,
    statuses: tuple[Status, ...],
    max_attempts: int,
    requests: st.SearchStrategy[dict[str, Any]],
    owner_keys: st.SearchStrategy[str | None],
) -> Generation:
    request = draw(requests)
    status = draw(st.sampled_from(statuses))
    created = _EPOCH_2025 + timedelta(microseconds=draw(st.integers(0, 2 * 365 * 86_400 * 10**6)))
    later = st.integers(1, 3_600 * 10**6).map(lambda us: timedelta(microseconds=us))
    fields: dict[str, Any] = {"attempts": 0}
    requeued = False
    if status is not Status.PENDING and not (status is Status.CANCELLED and draw(st.booleans())):
        fields["attempts"] = draw(st.integers(1, max_attempts))
        fields["started_at"] = created + draw(later)
        fields["worker_id"] = draw(st.sampled_from(["gpu-0", "gpu-1", "gpu-2", "worker-a"]))
    elif max_attempts > 1 and draw(st.booleans()):
        # requeued after failed attempts (fail's retry, an expired lease), and maybe cancelled since; it keeps
        # its last claim's start (a row an older musicstore requeued has none)
        fields["attempts"] = draw(st.integers(1, max_attempts - 1))
        if draw(st.booleans()):
            fields["started_at"] = created + draw(later)
        requeued = True
    if status is Status.PROCESSING:
        fields["lease_expires_at"] = fields["started_at"] + timedelta(seconds=300)
    if status in (Status.COMPLETED, Status.FAILED, Status.CANCELLED):
        fields["completed_at"] = fields.get("started_at", created) + draw(later)
    if status is Status.COMPLETED:
        fields["file_path"] = f"{created:%Y/%m/%d}/{{id}}.wav"
        fields["file_size_bytes"] = draw(st.integers(44, 500_000_000))
        fields["generation_time_seconds"] = (fields["completed_at"] - fields["started_at"]).total_seconds()
    # a failed row has its error, a requeued pending one its last attempt's; a replayed one (attempts 0) and
    # a processing one (claimed after either) may keep one
    if (
        status is Status.FAILED
        or (status is Status.PENDING and (requeued or draw(st.booleans())))
        or (status is Status.PROCESSING and draw(st.booleans()))
    ):
        fields["error_message"] = draw(st.text(alphabet=_text_alphabet, max_size=80))
    generation_id = new_id()
    if "file_path" in fields:
        fields["file_path"] = fields["file_path"].replace("{id}", generation_id)
    fields |= _queue_fields(
        draw,
        fields,
        status=status,
        created=created,
        generation_id=generation_id,
        owner_keys=owner_keys,
        requeued=requeued,
    )
    return Generation(
        id=generation_id,
        prompt=request["prompt"],
        model_name=request["model_name"],
        model_version=draw(st.none() | st.sampled_from(["1.0", "2.1-beta"])),
        duration_seconds=request["duration_seconds"],
        sample_rate=request["sample_rate"],
        channels=request["channels"],
        status=status,
        created_at=created,
        metadata=request["metadata"],
        **fields,
    )


def _queue_fields(
    draw: st.DrawFn,
    fields: dict[str, Any],
    *,
    status: Status,
    created: datetime,
    generation_id: str,
    owner_keys: st.SearchStrategy[str | None],
    requeued: bool,
) -> dict[str, Any]:
    """The queue's columns (priority, owner and idempotency keys, run_after) and the progress columns of a
    row drawn so far, as the store leaves them: a row claimed after its ``run_after``, progress only on a row
    that was claimed and is not pending again (a requeue clears it), written between its claim and its end.
    A requeued row keeps its last claim's start but is not claimed now: its ``run_after`` may be a backoff
    after that claim, and it has no progress."""
    queue: dict[str, Any] = {
        "priority": draw(st.just(0) | st.sampled_from([-10, -1, 1, 10, 100]) | st.integers(-32_768, 32_767)),
        "owner_key": draw(owner_keys),
        # unique among all generations: a drawn text made unique by the row's id (rows drawn together
        # never share one)
        "idempotency_key": draw(st.none() | _names(40).map(lambda key: f"{key}:{generation_id}")),
    }
    started: datetime | None = None if requeued else fields.get("started_at")
    if started is not None:  # claimed once it was due
        queue["run_after"] = draw(st.none() | _after(created, started - created))
    else:  # due now, in the past, or later (a future job, a retry's backoff)
        queue["run_after"] = draw(st.none() | _after(created - timedelta(hours=1), timedelta(days=7)))
    if started is not None and status is not Status.PENDING and draw(st.booleans()):
        end = fields.get("completed_at") or fields["lease_expires_at"]
        queue["progress"] = draw(st.just(1.0) | st.floats(0, 1))
        queue["stage"] = draw(st.none() | st.sampled_from(STAGES) | _names(64))
        queue["progress_at"] = draw(_after(started, end - started))
    return queue


def generations(
    *,
    statuses: Iterable[Status | str] | Status | str = tuple(Status),
    max_attempts: int = 3,
    min_seconds: float | None = None,
    max_seconds: float = 300.0,
    sample_rates: Iterable[int] | int = SAMPLE_RATES,
    channels: Iterable[int] | int = (1, 2),
    model_names: Iterable[str] | str = MODEL_NAMES,
    prompt: st.SearchStrategy[str] | None = None,
    owner_keys: Iterable[str] | str | None = None,
) -> st.SearchStrategy[Generation]:
    """Whole rows in any of ``statuses`` (one status, or several), consistent with the status machine (a
    processing row has a worker and lease, a completed one a file, timestamps in order; a pending or
    cancelled one may have been requeued after failed attempts, fewer than ``max_attempts``, a pending one
    then with its last error, as a processing one may have); for testing code that reads rows. Their
    requests are narrowed as ``generation_requests``' are (``min_seconds``, ``max_seconds``,
    ``sample_rates``, ``channels``, ``model_names``, ``prompt``), with its checks.

    The queue's columns are drawn too: ``priority`` (mostly 0), ``run_after`` (a pending row's may be
    past or to come; a claimed row was claimed after it), ``owner_key`` (none, or one of ``owner_keys``: one
    key or several; by default mostly ``OWNER_KEYS``, so that rows share lanes, else any name of up to 200
    characters), ``idempotency_key`` (unique: rows drawn together never share one), and the progress of a
    claimed row that is not pending again (``progress``, ``stage``, ``progress_at`` between its claim and
    its end)."""
    requests = generation_requests(
        min_seconds=min_seconds,
        max_seconds=max_seconds,
        sample_rates=sample_rates,
        channels=channels,
        model_names=model_names,
        prompt=prompt,
    )
    chosen = tuple(dict.fromkeys(validate.status(s) for s in _several(statuses, "statuses")))  # Status: a str
    if not chosen:
        raise InvalidInput("statuses must name at least one status")
    if owner_keys is None:
        keys: st.SearchStrategy[str | None] = st.none() | st.sampled_from(OWNER_KEYS) | _names(200)
    else:
        named = sorted({str(validate.name(key, "owner_keys")) for key in _several(owner_keys, "owner_keys")})
        if not named:
            raise InvalidInput("owner_keys must name at least one owner key (or be None: any)")
        keys = st.none() | st.sampled_from(named)
    attempts = validate.integer(max_attempts, "max_attempts", 1, 1_000_000)
    return _generation(chosen, attempts, requests, keys)


@st.composite
def _audio(
    draw: st.DrawFn,
    *,
    channels: tuple[int, ...],
    sample_rate: int,
    min_seconds: float,
    max_seconds: float,
    batch: int | None,
    transients: bool | None,
    loudness_db: tuple[float, float],
) -> np.ndarray[Any, np.dtype[np.float32]]:
    count = draw(st.sampled_from(channels))
    frames = max(1, round(draw(st.floats(min_seconds, max_seconds)) * sample_rate))
    seed = draw(st.integers(0, 2**32 - 1))
    level = 10 ** (draw(st.floats(*loudness_db)) / 20)
    with_transients = draw(st.booleans()) if transients is None else transients
    rng = np.random.default_rng(seed)
    shape = (batch or 1, count, frames)
    t = np.arange(frames, dtype=np.float64) / sample_rate
    tones = sum(
        np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) / (k + 1)
        for k, f in enumerate(rng.uniform(55, 2_000, size=3))
    )
    signal = np.broadcast_to(tones, shape) + 0.05 * rng.standard_normal(shape)
    if with_transients:
        for position in rng.integers(0, frames, size=max(1, frames // max(1, sample_rate // 4))):
            signal[..., position] *= 8
    for _ in range(8):  # levelled after the transients; clipping lowers the level, so level again
        signal *= level / max(float(np.sqrt(np.mean(np.square(signal)))), 1e-300)
        np.clip(signal, -0.99, 0.99, out=signal)
    audio = signal.astype(np.float32)
    return audio if batch is not None else audio[0]


MAX_AUDIO_SAMPLES = 2**27
"""The most samples (all channels and batch items) one ``audio`` example may have: its making works on
float64 arrays of that size (1 GiB), and a bigger one raised numpy's MemoryError at the first draw."""


def audio(
    *,
    channels: Iterable[int] | int = (1, 2),
    sample_rate: int = 32_000,
    min_seconds: float | None = None,
    max_seconds: float = 5.0,
    batch: int | None = None,
    transients: bool | None = None,
    loudness_db: tuple[float, float] = (-40.0, -12.0),
    as_tensor: bool = False,
) -> st.SearchStrategy[Any]:
    """Music-like float32 audio: ``(C, S)``, or ``(B, C, S)`` with ``batch``; RMS level within ``loudness_db``
    dBFS, transients included (a level near 0 dBFS may stay a little under it), never clipping; from
    ``min_seconds`` (0.5 s, or ``max_seconds`` when that is shorter) to ``max_seconds`` long.
    ``as_tensor=True`` yields a torch tensor (needs torch)."""
    counts = tuple(_each(channels, validate.channels, "channels"))
    if not counts:
        raise InvalidInput(f"channels must name at least one count within 1-{MAX_CHANNELS}")
    rate = validate.sample_rate(sample_rate)
    low, high = _span(min_seconds, max_seconds, 0.5, positive=False)
    if high <= 0:
        raise InvalidInput(f"max_seconds must be > 0, got {max_seconds!r}")
    if batch is not None:
        batch = validate.integer(batch, "batch", 1, 1_000_000)
    most = (batch or 1) * max(counts) * max(1, round(high * rate))
    if most > MAX_AUDIO_SAMPLES:
        raise InvalidInput(
            f"audio of up to {most:,} samples (batch x channels x max_seconds x sample_rate) is more than "
            f"{MAX_AUDIO_SAMPLES:,} samples an example may have; narrow max_seconds or batch"
        )
    if transients is not None:
        transients = validate.flag(transients, "transients")
    as_tensor = validate.flag(as_tensor, "as_tensor")
    bad_loudness = f"loudness_db must be (low, high) dBFS with low <= high <= 0, got {loudness_db!r}"
    if not isinstance(loudness_db, tuple | list) or len(loudness_db) != 2:
        raise InvalidInput(bad_loudness)
    quiet, loud = loudness_db
    levels_ok = all(
        isinstance(v, int | float) and not isinstance(v, bool) and -math.inf < v <= 0 for v in (quiet, loud)
    )
    if not levels_ok or quiet > loud:
        raise InvalidInput(bad_loudness)
    arrays = _audio(
        channels=counts,
        sample_rate=rate,
        min_seconds=low,
        max_seconds=high,
        batch=batch,
        transients=transients,
        loudness_db=(float(quiet), float(loud)),
    )
    if not as_tensor:
        return arrays
    import torch

    return arrays.map(torch.from_numpy)
