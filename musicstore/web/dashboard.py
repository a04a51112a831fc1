"""The dashboard's pages and JSON API (``musicstore.web.app`` serves them): ``Dashboard``, one handler per
route over a ``Store``, every read in a read transaction; the audio found through ``musicstore.delivery``."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import threading
from collections import Counter, OrderedDict
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import numpy as np
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from ..delivery import Delivery, Located, Root
from ..errors import InvalidAudio, InvalidInput, InvalidTransition, MusicstoreError, NotFound, StorageError
from ..filestore import ChecksumMismatch, LocalFileStore, ObjectNotFound
from ..ids import check_id
from ..metrics import MetricsSnapshot, StoreCollector, metrics_op
from ..models import Generation, Status
from ..store import Store
from .access import COOKIE, login_token_matches
from .ranges import AudioFileResponse
from .reads import (
    _filters,
    _limit,
    _picked_model,
    before,
    check_filters,
    clock_now,
    completions_by_hour_op,
    created_by_hour_op,
    days_op,
    now_op,
    read_models,
    recent_failures_op,
    recent_prompts_op,
    table_page,
    workers_op,
)
from .templating import FIGURES, _assets, _environment, _json, generation_dict

log = logging.getLogger("musicstore.web.app")  # the app's logger, as before the split

PEAK_BUCKETS = 1000
TRENDING_ROWS = 50_000
"""At most this many of the newest rows of a trending window are counted."""
OVERVIEW_ROWS = 50_000
"""The overview's snapshot reads at most this many of the day's newest rows (its window figures and the
failures per hour); the created and completed series count every row, on their indexes."""
PEAKS_CACHED = 128
AUDIO_TYPES = {
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
}


class Dashboard:
    """The app's state: the store, where audio is read from, the templates and assets."""

    def __init__(
        self,
        store: Store,
        *,
        owned: bool,
        root: Root | None,
        token: str | None,
        options: Mapping[str, Any] | None,
    ) -> None:
        self.store = store
        self.owned = owned
        self.token = token
        try:
            self.delivery = Delivery(store, root=root, options=options)
        except StorageError:  # a local root that does not exist (yet): rows that need it answer 404
            self.delivery = Delivery(store, options=options)
        self.templates = _environment()
        self.assets = _assets()
        self._peaks: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def close(self) -> None:
        self.delivery.close()
        if self.owned:
            self.store.close()

    # -- helpers ---------------------------------------------------------------------------------------------

    def render(self, request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        base, page = request.scope.get("root_path", "").rstrip("/"), name.removesuffix(".html")
        now = context.get("taken_at") or clock_now(self.store)  # the store's clock, as its figures (footer)
        html = self.templates.get_template(name).render(base=base, page=page, now=now, **context)
        return HTMLResponse(html, status_code=status_code)

    def generation_or_404(self, request: Request) -> Generation:
        try:
            generation_id = check_id(request.path_params["id"])
        except InvalidInput:
            raise HTTPException(404, "no such generation: not a generation id") from None
        with self.store.transaction(write=False) as tx:
            found = tx.get_generation(generation_id)
        if found is None:
            raise HTTPException(404, "no such generation")
        return found

    def overview_data(self) -> tuple[MetricsSnapshot, dict[str, Any]]:
        # one read transaction: the page's figures add up (in two, a job written between was in the bars only)
        with self.store.transaction(write=False) as tx:
            snapshot = tx.run(metrics_op, window=86_400, window_limit=OVERVIEW_ROWS)
            now = snapshot.taken_at
            hour0 = before(now.replace(minute=0, second=0, microsecond=0), timedelta(hours=23))
            first_day = before(now, timedelta(days=29)).date()
            days = tx.run(days_op, first_day.isoformat())  # "0001-01-01": strftime writes the year 1 as "1"
            failures = tx.run(recent_failures_op, 10)  # by when they failed
            # throughput: every completion of the window, whenever its row was created (a backlog older
            # than a day was not counted at all), on the completed index
            completed = tx.run(completions_by_hour_op, hour0)
            # every creation of each hour (the snapshot holds the newest OVERVIEW_ROWS of the day)
            created = tx.run(created_by_hour_op, hour0)
        hours = [hour0 + timedelta(hours=i) for i in range(24)]
        failed = [0] * 24

        def slot(moment: datetime | None) -> int | None:
            if moment is None or moment < hour0:
                return None
            index = int((moment - hour0).total_seconds() // 3600)
            return index if 0 <= index < 24 else None

        for row in snapshot.recent:
            if row["status"] == Status.FAILED and (i := slot(row["completed_at"])) is not None:
                failed[i] += 1
        day_labels = [(first_day + timedelta(days=i)).isoformat() for i in range(30)]
        by_day = dict(days)
        charts = {
            "hours": {
                "labels": [h.strftime("%H:00") for h in hours],
                "series": [["created", created], ["completed", completed], ["failed", failed]],
            },
            "days": {  # every one of the 30 days, a day without rows at 0 (it had no bar, nor place)
                "labels": day_labels,
                "series": [["created", [by_day.get(day, 0) for day in day_labels]]],
            },
        }
        return snapshot, {"charts": charts, "failures": failures}

    def located(self, generation: Generation) -> Located:
        """Where a completed generation's file is; 404 when this app cannot reach it (no output root for a
        row recorded without a storage URL, or the file is gone)."""
        try:
            found = self.delivery.locate(generation)
        except (InvalidInput, InvalidTransition, NotFound):
            raise HTTPException(404, "no audio: its file is not reachable from this dashboard") from None
        if isinstance(found.files, LocalFileStore) and not _contained(found.files.root, found.key).is_file():
            raise HTTPException(404, "no audio: its file is missing")
        return found

    def peaks(self, generation: Generation) -> dict[str, Any]:
        # its completion too: a master made again (a replay) has the same size, as any WAV of its length
        key = f"{generation.id}:{generation.completed_at}:{generation.file_size_bytes}"
        with self._lock:
            cached = self._peaks.get(key)
            if cached is not None:
                self._peaks.move_to_end(key)
                return cached
        located = self.located(generation)
        result = self.recorded_peaks(generation, located)
        if result is None:
            try:
                result = self.computed_peaks(generation, located)
            except InvalidAudio as exc:  # the recorded file is not audio (or holds NaN): no waveform
                log.warning("%s: no waveform (%s)", generation.id, exc)
                raise HTTPException(404, "no waveform: the audio file cannot be read as audio") from None
        with self._lock:
            self._peaks[key] = result
            while len(self._peaks) > PEAKS_CACHED:
                self._peaks.popitem(last=False)
        return result

    def computed_peaks(self, generation: Generation, located: Located) -> dict[str, Any]:
        """The waveform computed from the audio file, in about ``PEAK_BUCKETS`` buckets; else InvalidAudio."""
        import soundfile as sf

        from ..audio.peaks import MAX_SAMPLES_PER_PIXEL, compute_peaks, file_peaks
        from ..audio.renditions import read_master

        try:
            if isinstance(located.files, LocalFileStore):
                path = _contained(located.files.root, located.key)
                frames = sf.info(str(path)).frames  # 2**63 - 1: a FLAC not saying (file_peaks says why)
                spp = min(max(1, math.ceil(frames / PEAK_BUCKETS)), MAX_SAMPLES_PER_PIXEL)
                found = file_peaks(path, spp)
            else:  # read_master: InvalidAudio for a truncated file too, which sf.read reads short
                try:
                    raw = self.delivery.read_audio(generation)
                except ObjectNotFound:  # as a folder's missing file (located): not the store failing
                    raise HTTPException(404, "no audio: its file is missing") from None
                except ChecksumMismatch as exc:  # damaged or changed: no waveform, as read_master's own
                    raise InvalidAudio(f"{located.key}: {exc}") from exc
                samples, rate = read_master(raw, located.key)
                frames = samples.shape[1]
                found = compute_peaks(samples, rate, max(1, math.ceil(frames / PEAK_BUCKETS)))
        except sf.LibsndfileError as exc:
            raise InvalidAudio(f"{located.key}: cannot read it as audio ({exc})") from exc
        return {
            "sample_rate": found.sample_rate,
            "samples_per_pixel": found.samples_per_pixel,
            "frames": found.frames,
            "length": found.length,
            "peaks": found.normalized()[0],
        }

    def recorded_peaks(self, generation: Generation, located: Located) -> dict[str, Any] | None:
        """The waveform from the peaks file the export put beside the master (``metadata["peaks"]``, its
        SHA-256 checked), in about ``PEAK_BUCKETS`` buckets (channels merged); None when the row records none
        or it cannot be read: ``peaks`` then computes them from the audio file."""
        recorded = generation.metadata.get("peaks")
        if not isinstance(recorded, Mapping) or not isinstance(recorded.get("key"), str):
            return None
        try:
            body = b"".join(located.files.get(recorded["key"], checksum=recorded.get("sha256")))
            doc = json.loads(body)
            bits, spp, length = int(doc["bits"]), int(doc["samples_per_pixel"]), int(doc["length"])
            pairs = np.asarray(doc["data"], dtype=np.float64).reshape(length, -1, 2) / float(1 << (bits - 1))
            rate = int(doc["sample_rate"])
        except (MusicstoreError, ValueError, KeyError, TypeError, OverflowError) as exc:  # 1e400, bits 2000
            log.warning("%s: its peaks file %s was not used (%s); the waveform is read from the audio",
                        generation.id, recorded["key"], exc)  # fmt: skip
            return None
        if length < 1 or spp < 1:
            return None
        group = math.ceil(length / PEAK_BUCKETS)
        starts = np.arange(0, length, group)
        lows = np.minimum.reduceat(pairs[:, :, 0].min(axis=1), starts)
        highs = np.maximum.reduceat(pairs[:, :, 1].max(axis=1), starts)
        frames = generation.metadata.get("frames")
        return {
            "sample_rate": rate,
            "samples_per_pixel": spp * group,
            "frames": frames if isinstance(frames, int) and not isinstance(frames, bool) else length * spp,
            "length": len(starts),
            "peaks": np.clip(np.stack([lows, highs], axis=1), -1.0, 1.0).round(4).reshape(-1).tolist(),
        }

    # -- pages -----------------------------------------------------------------------------------------------

    def overview(self, request: Request) -> Response:
        snapshot, extra = self.overview_data()
        return self.render(request, "overview.html", taken_at=snapshot.taken_at, s=snapshot, **extra)

    def table(self, request: Request) -> Response:
        filters, cursor = _filters(request)
        filters = check_filters(filters)  # as the form and the links show them (a day in its canonical form)
        limit = _limit(request)
        models = {model for model, _ in read_models(self.store)}
        filters = _picked_model(filters, models)
        with self.store.transaction(write=False) as tx:
            page = tx.run(table_page, filters, cursor=cursor, limit=limit)
        if filters.model_name is not None:  # a model without rows stays selected (the select said "any")
            models.add(filters.model_name)
        # the links keep the page size asked for (without it, the next page fell back to 50 rows)
        query = {**filters.query(), **({"limit": str(limit)} if "limit" in request.query_params else {})}
        next_url = None
        if page.next_cursor is not None:
            next_url = "?" + urlencode({**query, "cursor": page.next_cursor})
        return self.render(
            request,
            "generations.html",
            table=page,
            filters=filters,
            models=sorted(models),
            statuses=[s.value for s in Status],
            next_url=next_url,
            first_url="?" + urlencode(query) if cursor else None,
        )

    def generation(self, request: Request) -> Response:
        generation = self.generation_or_404(request)
        with self.store.transaction(write=False) as tx:
            renditions = tx.list_renditions(generation.id)
        no_audio = self.no_audio(generation) if generation.status is Status.COMPLETED else None
        figures = [
            (label, generation.metadata.get(key), unit)
            for key, label, unit in FIGURES
            if generation.metadata.get(key) is not None
        ]
        return self.render(
            request,
            "generation.html",
            g=generation,
            renditions=renditions,
            figures=figures,
            metadata=sorted(generation.metadata.items()),
            has_audio=generation.status is Status.COMPLETED and no_audio is None,
            no_audio=no_audio,
        )

    def no_audio(self, generation: Generation) -> str | None:
        """Why the page of a completed ``generation`` offers no player (its file gone, no output root for it,
        its storage unreadable), None when it does: not a player that never plays, two 404s in the console."""
        try:
            self.located(generation)
        except HTTPException as exc:
            return str(exc.detail)
        except StorageError:
            return "no audio: its storage cannot be read"
        return None

    def prompts(self, request: Request) -> Response:
        return self.render(request, "prompts.html", **self.prompt_data())

    def prompt_data(self) -> dict[str, Any]:
        with self.store.transaction(write=False) as tx:
            now = tx.run(now_op)  # the store's clock, which stamped the rows
            most_used = tx.get_most_used_prompts(20)
            # one row past the limit says that the window held more (the tables then count its newest rows)
            day = tx.run(recent_prompts_op, before(now, timedelta(days=1)), TRENDING_ROWS + 1)
            week = tx.run(recent_prompts_op, before(now, timedelta(days=7)), TRENDING_ROWS + 1)
        truncated = {"day": len(day) > TRENDING_ROWS, "week": len(week) > TRENDING_ROWS}
        del day[TRENDING_ROWS:], week[TRENDING_ROWS:]
        return {
            "most_used": most_used,
            "trending_day": Counter(day).most_common(20),
            "trending_week": Counter(week).most_common(20),
            "window_rows": {"day": len(day), "week": len(week)},
            "truncated": truncated,
            "taken_at": now,
        }

    def workers_data(self) -> dict[str, Any]:
        with self.store.transaction(write=False) as tx:
            return tx.run(workers_op)

    def workers(self, request: Request) -> Response:
        return self.render(request, "workers.html", **self.workers_data())

    def metrics(self, request: Request) -> Response:
        """A snapshot in the format ``Accept`` asks for (as prometheus_client's handlers): OpenMetrics for
        Prometheus, where gauge histograms keep their type; else the text format 0.0.4, labelled so."""
        from prometheus_client import CollectorRegistry
        from prometheus_client.exposition import choose_encoder

        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        registry = CollectorRegistry(auto_describe=False)
        registry.register(StoreCollector(self.store))
        return Response(encoder(registry), media_type=content_type)

    def audio(self, request: Request) -> Response:
        generation = self.generation_or_404(request)
        if generation.status is not Status.COMPLETED:
            raise HTTPException(404, "no audio: the generation is not completed")
        located = self.located(generation)
        suffix = Path(located.key).suffix.lower()
        media_type = AUDIO_TYPES.get(suffix, "application/octet-stream")
        if isinstance(located.files, LocalFileStore):
            path = _contained(located.files.root, located.key)
            return AudioFileResponse(path, media_type=media_type, content_disposition_type="inline")
        return RedirectResponse(located.files.presigned_url(located.key, expires=900), status_code=307)

    def asset(self, request: Request) -> Response:
        found = self.assets.get(request.path_params["name"])
        if found is None:
            raise HTTPException(404, "no such asset")
        body, media_type = found
        return Response(body, media_type=media_type, headers={"Cache-Control": "max-age=3600"})

    def login(self, request: Request) -> Response:
        base = request.scope.get("root_path", "").rstrip("/")
        if self.token is None:
            return RedirectResponse(base + "/", status_code=303)
        if not login_token_matches(request.scope["query_string"], self.token):
            return PlainTextResponse("wrong token\n", status_code=401)
        response = RedirectResponse(base + "/", status_code=303)
        cookie = quote(self.token, safe="")
        response.set_cookie(COOKIE, cookie, httponly=True, samesite="strict", path=base + "/")
        return response

    # -- the JSON API ----------------------------------------------------------------------------------------

    def api_overview(self, request: Request) -> Response:
        snapshot, extra = self.overview_data()
        return _json(
            {
                **snapshot.as_dict(),
                "charts": extra["charts"],
                "failures": [generation_dict(g) for g in extra["failures"]],
            }
        )

    def api_generations(self, request: Request) -> Response:
        filters, cursor = _filters(request)
        with self.store.transaction(write=False) as tx:
            page = tx.run(table_page, filters, cursor=cursor, limit=_limit(request))
        return _json({"items": [generation_dict(g) for g in page.items], "next_cursor": page.next_cursor})

    def api_generation(self, request: Request) -> Response:
        generation = self.generation_or_404(request)
        with self.store.transaction(write=False) as tx:
            renditions = tx.list_renditions(generation.id)
        return _json({**generation_dict(generation), "renditions": [r.as_dict() for r in renditions]})

    def api_peaks(self, request: Request) -> Response:
        generation = self.generation_or_404(request)
        if generation.status is not Status.COMPLETED:
            raise HTTPException(404, "no audio: the generation is not completed")
        return _json(self.peaks(generation))

    def api_prompts(self, request: Request) -> Response:
        data = self.prompt_data()
        return _json(
            {
                "most_used": [
                    {"text": p.text, "used_count": p.used_count, "last_used_at": p.last_used_at}
                    for p in data["most_used"]
                ],
                "trending_day": [{"text": t, "uses": n} for t, n in data["trending_day"]],
                "trending_week": [{"text": t, "uses": n} for t, n in data["trending_week"]],
                "trending_truncated": data["truncated"],
            }
        )

    def api_workers(self, request: Request) -> Response:
        data = self.workers_data()
        live = len(data["processing"]) - data["expired"]
        return _json(
            {
                "workers": [dataclasses.asdict(w) for w in data["workers"]],
                "leases": {"live": live, "expired": data["expired"]},
                "processing": data["processing"],
                "truncated": data["truncated"],
            }
        )


def _contained(root: Path, key: str) -> Path:
    """``root/key``, refused unless it stays inside ``root`` (the key is the row's, never the URL's)."""
    path = (root / key).resolve()
    if not path.is_relative_to(root.resolve()):
        raise StorageError("the recorded file is outside the output root")
    return path
