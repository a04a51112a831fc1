"""The read-only web dashboard (optional extra ``web``: Starlette, uvicorn, Jinja2, prometheus-client).

``create_app(store_or_url, root=..., token=...)`` is an ASGI app: pages (overview, generations, one
generation with its audio and waveform, prompts, workers), a JSON API under ``/api/`` and ``/metrics``.
``musicstore serve`` runs it with uvicorn on 127.0.0.1. See docs/dashboard.md.
"""

from .app import Dashboard, DashboardApp, create_app

__all__ = ["Dashboard", "DashboardApp", "create_app"]
