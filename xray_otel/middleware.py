"""HTTP middlewares: API keys and CORS, ahead of every route."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .auth import ADMIN, INGEST, READ, AuthError, KeyRing, presented_key
from .web import json_error
from .receiver.codec import PROTOBUF, codec_for
from .receiver.errors import AUTH_ERRORS
from .receiver.http import SIGNAL_PATHS, error_response
from .web import PROJECT
from .ui.routes import is_ui_path, wants_html

KEYS = web.AppKey("keys", KeyRing)
CORS_ORIGINS = web.AppKey("cors_origins", list)
_OPEN_PATHS = frozenset({"/health"})
_OTLP_PATHS = frozenset({"/v1/traces", *SIGNAL_PATHS})
_INGEST_PATHS = _OTLP_PATHS | {"/ingest"}
_CORS_HEADERS = {
    "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Content-Encoding, Authorization, x-api-key",
    "Access-Control-Max-Age": "600",
}


@web.middleware
async def require_api_key(request: web.Request, handler: Any) -> web.StreamResponse:
    """With keys configured, every path but /health and the UI's files needs one with the right scope.

    The UI's files (and a browser's redirect from /) hold no data; the page asks for a key itself.
    """
    keys = request.app[KEYS]
    if not keys.enabled or request.path in _OPEN_PATHS or request.method == "OPTIONS" or _holds_no_data(request):
        return await handler(request)
    scope = INGEST if request.path in _INGEST_PATHS else ADMIN if _changes_rules(request) else READ
    try:
        request[PROJECT] = keys.check(
            presented_key(request.headers.get("Authorization"), request.headers.get("x-api-key")), scope)
    except AuthError as exc:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        if request.path in _OTLP_PATHS:  # exporters get a google.rpc.Status in their encoding
            codec = codec_for(request.content_type) or codec_for(PROTOBUF)
            error = AUTH_ERRORS[exc.status](exc.message)
            response = error_response(error, codec.encode_status(error.grpc_code, exc.message), codec.content_type)
            response.headers.update(headers or {})
            return response
        return json_error(exc.status, exc.message, headers=headers)
    return await handler(request)


def _changes_rules(request: web.Request) -> bool:
    return request.method in ("POST", "PUT", "DELETE") and request.path.startswith("/alerts/")


def _holds_no_data(request: web.Request) -> bool:
    return is_ui_path(request.path) or (request.path == "/" and wants_html(request))


@web.middleware
async def cors(request: web.Request, handler: Any) -> web.StreamResponse:
    """CORS for the configured origins only (none by default): browser exporters and UIs elsewhere."""
    origin = request.headers.get("Origin")
    allowed = origin is not None and origin in request.app[CORS_ORIGINS]
    if allowed and request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        return web.Response(status=204, headers={**_CORS_HEADERS, "Access-Control-Allow-Origin": origin,
                                                 "Vary": "Origin"})
    response = await handler(request)
    if allowed:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    return response
