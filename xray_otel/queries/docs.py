"""GET /openapi.json and GET /docs: the API description and a page that renders it, offline.

The page is one self-written HTML file in static/ (no CDN, no vendored Swagger UI): it fetches
/openapi.json and shows each operation with a form to try it against this server.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from aiohttp import web

from ..web import json_ok
from .openapi import document


@lru_cache(maxsize=1)
def _document() -> dict:
    return document()


@lru_cache(maxsize=1)
def _page() -> str:
    return resources.files("xray_otel.queries").joinpath("static/docs.html").read_text(encoding="utf-8")


async def openapi_json(request: web.Request) -> web.Response:
    return json_ok(_document())


async def docs_page(request: web.Request) -> web.Response:
    return web.Response(text=_page(), content_type="text/html", charset="utf-8",
                        headers={"Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline'; "
                                                            "script-src 'unsafe-inline'"})
