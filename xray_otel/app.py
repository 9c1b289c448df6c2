"""The aiohttp application: OTLP receiver, legacy ingestion and REST queries on one port."""

from __future__ import annotations

from importlib.metadata import version

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .config import Settings
from .middleware import CORS_ORIGINS, KEYS, cors, require_api_key
from .queries import openapi
from .web import PROJECT, json_error, json_ok
from .queries.alerts import PRIVATE_WEBHOOKS, SERVER_SECRET
from .queries.common import STORE, query_errors
from .queries.routes import add_routes
from .receiver.http import BODY_TIMEOUT, INGESTER, MAX_BODY, SIGNAL_PATHS, handle_ignored, handle_traces
from .receiver.ingest import Ingester
from .receiver.legacy import handle_legacy_ingest
from .store.store import Store
from .ui.routes import add_ui_routes, wants_html


def build_app(store: Store, ingester: Ingester, settings: Settings) -> web.Application:
    app = web.Application(middlewares=[cors, require_api_key, query_errors],
                          client_max_size=settings.max_body_bytes)
    app[KEYS] = settings.keys
    app[CORS_ORIGINS] = settings.cors_origin_list()
    app[STORE] = store
    app[INGESTER] = ingester
    app[MAX_BODY] = settings.max_body_bytes
    app[BODY_TIMEOUT] = settings.request_timeout
    app[SERVER_SECRET] = bool(settings.alert_secret)
    app[PRIVATE_WEBHOOKS] = settings.alert_allow_private_webhooks
    app.router.add_get("/", index)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)
    app.router.add_route("*", "/v1/traces", handle_traces)
    for path in SIGNAL_PATHS:
        app.router.add_route("*", path, handle_ignored)
    app.router.add_post("/ingest", handle_legacy_ingest)
    add_routes(app)
    add_ui_routes(app)
    return app


async def index(request: web.Request) -> web.Response:
    """Browsers go to the UI; anyone else gets name, version and every endpoint (from the OpenAPI list)."""
    if wants_html(request):
        raise web.HTTPFound("/ui/")
    endpoints = {f"{e.method.upper()} {e.path}": e.summary for e in openapi.ENDPOINTS}
    endpoints["gRPC TraceService/Export"] = "OTLP/gRPC trace export, on the gRPC port (default 4317)"
    return json_ok({"name": "xray-otel", "version": version("xray-otel"), "endpoints": endpoints, "docs": "/docs", "ui": "/ui/"})


async def health(request: web.Request) -> web.Response:
    return json_ok({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    if request.get(PROJECT) is not None:  # the counters are every project's traffic
        return json_error(403, "a project-bound API key cannot read /metrics: its figures cover every project")
    registry = request.app[INGESTER].metrics.registry
    return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def ready(request: web.Request) -> web.Response:
    if await request.app[STORE].ready():
        return json_ok({"status": "ready"})
    return json_error(503, "database unreachable", headers={"Retry-After": "2"})
