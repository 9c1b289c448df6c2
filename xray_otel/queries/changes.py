"""GET /pipelines/{name}/changes and /changes: what moved in the window against the baseline before it
(xray_otel/health; docs/health.md says how it is tested)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from ..health.changes import UnknownPipeline, find_changes
from ..web import PROJECT, json_ok
from .common import QueryError, reads
from .params import BadParameter, Param, convert, parse
from .pipelines import NAME

_DURATION = re.compile(r"^(\d{1,5})([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MIN_WINDOW, MAX_SPAN = timedelta(minutes=5), timedelta(days=92)

_COMMON = (
    Param("window", "string", "the recent period looked at, ending at `until`: `<n>m|h|d|w` (default 24h)",
          default="24h"),
    Param("baseline", "string", "the period right before the window it is compared with (default 7d)", default="7d"),
    Param("until", "datetime", "end of the window, exclusive (ISO-8601 or relative; default now)"),
)
PARAMS = _COMMON + (
    Param("limit", "integer", "at most this many entries (default 100, max 1000)", minimum=1, maximum=1000,
          default=100),
)


async def get_pipeline_changes(request: web.Request) -> web.Response:
    _refuse_projects(request)
    name = convert(NAME, request.match_info["name"])
    return await _answer(request, name, parse(request.query, PARAMS))


async def list_changes(request: web.Request) -> web.Response:
    _refuse_projects(request)
    return await _answer(request, None, parse(request.query, PARAMS))


def _refuse_projects(request: web.Request) -> None:
    if request.get(PROJECT) is not None:  # as /pipelines/{name}: a pipeline's figures span every service
        raise QueryError(403, "a project-bound API key cannot read pipeline changes: they span every service "
                              "that ran the pipeline; use a key bound to no project")


async def _answer(request: web.Request, name: str | None, p: dict[str, Any]) -> web.Response:
    window, baseline = duration("window", p["window"]), duration("baseline", p["baseline"])
    until = p["until"] or datetime.now(timezone.utc)
    try:
        changes = await find_changes(reads(request), name, window, baseline, until, p["limit"])
    except UnknownPipeline:
        raise QueryError(404, f"no run named {name[:64]!r}") from None
    start = until - window
    return json_ok({"pipeline": name, "window": {"since": start, "until": until},
                    "baseline": {"since": start - baseline, "until": start}, "changes": changes})


def duration(name: str, text: str) -> timedelta:
    """``<n>m|h|d|w`` as a timedelta, between 5 minutes and 92 days; a 400 naming ``name`` otherwise."""
    match = _DURATION.match(text.strip())
    if not match:
        raise BadParameter(f"{name} must be a duration like 30m, 24h, 7d or 2w, got {text[:64]!r}")
    value = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if not MIN_WINDOW <= value <= MAX_SPAN:
        raise BadParameter(f"{name} must be between 5m and 92d, got {text[:64]!r}")
    return value
