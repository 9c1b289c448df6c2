"""Serve the web UI: one HTML shell at /ui/, its scripts and styles under /ui/assets/.

The files carry no data (the page fetches the public REST API with the user's key), so they are
served without a key; a browser asking for / is sent here.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).parent / "static"
PREFIX = "/ui"
# No inline script or style, nothing from another origin: data rendered as text cannot run.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def add_ui_routes(app: web.Application) -> None:
    app.router.add_get(PREFIX, to_ui)
    app.router.add_get(PREFIX + "/", page)
    app.router.add_static(PREFIX + "/assets", STATIC, append_version=False)
    app.on_response_prepare.append(_revalidate_assets)


async def _revalidate_assets(request: web.Request, response: web.StreamResponse) -> None:
    """Browsers check each file's ETag before reuse (a cheap 304), so an upgraded server never runs
    a page whose modules come half from the old version and half from the new."""
    if request.path.startswith(PREFIX + "/assets/"):
        response.headers["Cache-Control"] = "no-cache"


def is_ui_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def wants_html(request: web.Request) -> bool:
    """A browser navigating (Accept lists text/html), as opposed to curl or a script asking for JSON."""
    return "text/html" in request.headers.get("Accept", "")


async def to_ui(request: web.Request) -> web.Response:
    raise web.HTTPFound(PREFIX + "/")


async def page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={
        "Content-Security-Policy": _CSP, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})
