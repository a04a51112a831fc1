"""The dashboard's pages and JSON API (``musicstore.web.app`` serves them): ``Dashboard``, one handler per
route over a ``Store``, every read in a read transaction; the audio found through ``musicstore.delivery``."""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter, OrderedDict
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from ..delivery import Delivery, Root
from ..errors import InvalidInput, StorageError
from ..filestore import LocalFileStore
from ..ids import check_id
from ..metrics import MetricsSnapshot, StoreCollector
from ..metrics.reads import metrics_edge_op
from ..models import Generation, Status
from ..store import Store
from .access import COOKIE, login_token_matches
from .audio_peaks import PEAK_BUCKETS, PEAKS_CACHED, AudioPeaks, _contained
from .ranges import AudioFileResponse
from .reads import (
    _picked_model,
    asked,
    before,
    clock_now,
    completions_by_hour_op,
    created_by_hour_op,
    days_op,
    failed_after_edge_op,
    now_op,
    read_models,
    recent_failures_op,
    recent_prompts_op,
    table_page,
    workers_op,
)
from .templating import FIGURES, _assets, _environment, _json, generation_dict

TRENDING_ROWS = 50_000
"""At most this many of the newest rows of a trending window are counted."""
OVERVIEW_ROWS = 50_000
"""The overview's snapshot counts at most this many of the day's newest rows (its window figures and the
failures per hour, in the database: no row is read); the created and completed series count every row, on
their indexes."""
AUDIO_TYPES = {
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
}


class Dashboard(AudioPeaks):
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
            # the window's figures and its failures per hour are counted in the database: no row is read
            snapshot, edge = tx.run(metrics_edge_op, window=86_400, window_limit=OVERVIEW_ROWS)
            now = snapshot.taken_at
            hour0 = before(now.replace(minute=0, second=0, microsecond=0), timedelta(hours=23))
            # when the rows created in the window failed (those of the window's figures: its edge)
            failed = tx.run(failed_after_edge_op, edge, hour0)
            first_day = before(now, timedelta(days=29)).date()
            days = tx.run(days_op, first_day.isoformat())  # "0001-01-01": strftime writes the year 1 as "1"
            failures = tx.run(recent_failures_op, 10)  # by when they failed
            # throughput: every completion of the window, whenever its row was created (a backlog older
            # than a day was not counted at all), on the completed index
            completed = tx.run(completions_by_hour_op, hour0)
            # every creation of each hour (the snapshot holds the newest OVERVIEW_ROWS of the day)
            created = tx.run(created_by_hour_op, hour0)
        hours = [hour0 + timedelta(hours=i) for i in range(24)]
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

    # -- pages -----------------------------------------------------------------------------------------------

    def overview(self, request: Request) -> Response:
        snapshot, extra = self.overview_data()
        return self.render(request, "overview.html", taken_at=snapshot.taken_at, s=snapshot, **extra)

    def table(self, request: Request) -> Response:
        filters, cursor, limit = asked(request)  # as the form and the links show them (a canonical day)
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
        its storage unreadable, its file not the one its row records), None when it does: not a player that
        never plays, two 404s in the console."""
        try:
            self.checked(generation, brief=True)
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
        Prometheus, where gauge histograms keep their type; else (a malformed ``version`` in it too) the text
        format 0.0.4, labelled so."""
        from prometheus_client import CollectorRegistry
        from prometheus_client.exposition import choose_encoder

        try:
            encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        except (TypeError, ValueError):  # a version it cannot compare ("version=abc"): the client's header
            encoder, content_type = choose_encoder("")
        registry = CollectorRegistry(auto_describe=False)
        registry.register(StoreCollector(self.store))
        return Response(encoder(registry), media_type=content_type)

    def audio(self, request: Request) -> Response:
        generation = self.generation_or_404(request)
        if generation.status is not Status.COMPLETED:
            raise HTTPException(404, "no audio: the generation is not completed")
        located, stat_result = self.checked(generation)  # its size (and kept SHA-256) checked: 404, 500
        suffix = Path(located.key).suffix.lower()
        media_type = AUDIO_TYPES.get(suffix, "application/octet-stream")
        if isinstance(located.files, LocalFileStore):
            path = _contained(located.files.root, located.key)
            return AudioFileResponse(  # served at the size checked: no second stat
                path, media_type=media_type, content_disposition_type="inline", stat_result=stat_result
            )
        # signed for the request's method: a client follows a 307 with it, and a GET URL answers a HEAD 403
        # (a GET's asked as before: a file store of the user's that takes no method still serves it)
        head = {"method": "HEAD"} if request.method == "HEAD" else {}
        url = located.files.presigned_url(located.key, expires=900, **head)
        return RedirectResponse(url, status_code=307)

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
        # Lax: a link from another site (a runbook, an alert) opens its page, /login's redirect included
        # (Strict withheld it there: 401); only GET and HEAD are answered; other sites' requests go without it
        response.set_cookie(COOKIE, cookie, httponly=True, samesite="lax", path=base + "/")
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
        filters, cursor, limit = asked(request)
        with self.store.transaction(write=False) as tx:
            page = tx.run(table_page, filters, cursor=cursor, limit=limit)
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


__all__ = [  # with the waveform's figures, which live beside Dashboard's AudioPeaks in web/audio_peaks.py
    "AUDIO_TYPES",
    "OVERVIEW_ROWS",
    "PEAKS_CACHED",
    "PEAK_BUCKETS",
    "TRENDING_ROWS",
    "Dashboard",
]
