"""GET /pipelines and /pipelines/{name}: per run name, health and funnel figures over a time window."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from ..store.reads import Row
from ..web import PROJECT, json_ok
from .common import QueryError, reads, scoped_query
from .params import Param, convert, parse

DEFAULT_WINDOW = timedelta(hours=24)
TOP_REASONS = 5
MAX_STEPS = 500

_WINDOW = (
    Param("since", "datetime", "window start (ISO-8601 or relative like `7d`; default 24 hours before `until`)"),
    Param("until", "datetime", "window end, exclusive (ISO-8601 or relative; default now)"),
)
LIST_PARAMS = _WINDOW + (
    Param("service", "string", "only runs from this `service.name`"),
    Param("limit", "integer", "at most this many pipelines, most runs first (default 100, max 1000)",
          minimum=1, maximum=1000, default=100),
)
GET_PARAMS = _WINDOW
NAME = Param("name", "string", "run (pipeline) name", required=True)


async def list_pipelines(request: web.Request) -> web.Response:
    p = parse(scoped_query(request), LIST_PARAMS)
    since, until = window(p)
    rows = await reads(request).pipelines(since, until, p["service"], p["limit"])
    return json_ok({"window": {"since": since, "until": until}, "pipelines": [_pipeline(r) for r in rows]})


async def get_pipeline(request: web.Request) -> web.Response:
    if request.get(PROJECT) is not None:  # its figures span every service that ran this name
        raise QueryError(403, "a project-bound API key reads pipelines through /pipelines?service=<project>")
    name = convert(NAME, request.match_info["name"])
    p = parse(request.query, GET_PARAMS)
    since, until = window(p)
    # One snapshot for all figures; days whose stored summaries were out of date are stored again
    # in the background.
    found = await reads(request).pipeline(name, since, until, top_reasons=TOP_REASONS, max_steps=MAX_STEPS)
    if found is None:
        raise QueryError(404, f"no run named {name[:64]!r}")
    summary = _pipeline(found.runs) if found.runs is not None else {"name": name, "run_count": 0, "failed_count": 0,
                                                        "failure_rate": None, "duration_ms": {"p50": None, "p95": None},
                                                        "avg_cost": None, "last_run_at": None}
    figures = [_step(figure) for figure in found.steps]
    return json_ok({"window": {"since": since, "until": until}, **summary, "steps": figures})


def window(p: dict[str, Any], default: timedelta = DEFAULT_WINDOW) -> tuple[datetime, datetime]:
    """[since, until) from the parsed ``since`` and ``until``: until defaults to now, since to ``default``
    before until."""
    until = p["until"] or datetime.now(timezone.utc)
    since = p["since"] or until - default
    if since >= until:
        raise QueryError(400, "since must be before until")
    return since, until


def _pipeline(row: Row) -> dict[str, Any]:
    return {
        "name": row["name"],
        "run_count": row["run_count"],
        "failed_count": row["failed"],
        "failure_rate": _round(row["failed"] / row["finished"]) if row["finished"] else None,
        "duration_ms": _percentiles(row["duration_ms"]),
        "avg_cost": row["avg_cost"],
        "last_run_at": row["last_run_at"],
    }


def _step(figures: dict[str, Any]) -> dict[str, Any]:
    """A step's figures (store/pipeline_stats.py step_figures) as the API shows them: rounded."""
    figures["avg_drop_rate"], figures["p95_drop_rate"] = _round(figures["avg_drop_rate"]), _round(figures["p95_drop_rate"])
    figures["duration_ms"] = _percentiles((figures["duration_ms"]["p50"], figures["duration_ms"]["p95"]))
    return figures


def _percentiles(values: list[float | None] | None) -> dict[str, float | None]:
    p50, p95 = values or (None, None)
    return {"p50": _round(p50, 3), "p95": _round(p95, 3)}


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)

