"""GET /pipelines and /pipelines/{name}: per run name, health and funnel figures over a time window."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

from aiohttp import web

from . import pipeline_days, pipeline_stats, sql
from .params import Param, convert, parse
from ..web import PROJECT, json_ok
from .routes import STORE, QueryError, scoped_query

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
REFRESHER = web.AppKey("pipeline_refresher", pipeline_days.Refresher)


async def list_pipelines(request: web.Request) -> web.Response:
    p = parse(scoped_query(request), LIST_PARAMS)
    since, until = _window(p)
    where = sql.Where()
    where.args += [since, until]
    if p["service"] is not None:
        where.add("r.service = {}", p["service"])
    rows = await request.app[STORE].pool.fetch(
        sql.PIPELINE_RUNS.format(where=where.sql(), limit=where.arg(p["limit"])), *where.args)
    return json_ok({"window": {"since": since, "until": until}, "pipelines": [_pipeline(r) for r in rows]})


async def get_pipeline(request: web.Request) -> web.Response:
    if request.get(PROJECT) is not None:  # its figures span every service that ran this name
        raise QueryError(403, "a project-bound API key reads pipelines through /pipelines?service=<project>")
    name = convert(NAME, request.match_info["name"])
    p = parse(request.query, GET_PARAMS)
    since, until = _window(p)
    async with request.app[STORE].pool.acquire() as conn, \
            conn.transaction(isolation="repeatable_read", readonly=True):  # one snapshot for all figures
        runs = await conn.fetch(sql.PIPELINE_RUNS.format(where="r.name = $3", limit=1), since, until, name)
        if not runs and not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM runs WHERE name = $1)", name):
            raise QueryError(404, f"no run named {name[:64]!r}")
        steps, stale = await pipeline_days.step_figures(conn, name, since, until, TOP_REASONS, MAX_STEPS)
    if stale:
        request.app[REFRESHER].request(name, stale)
    summary = _pipeline(runs[0]) if runs else {"name": name, "run_count": 0, "failed_count": 0,
                                               "failure_rate": None, "duration_ms": {"p50": None, "p95": None},
                                               "avg_cost": None, "last_run_at": None}
    # Decoding a long window's histograms takes a while: off the event loop, so ingest goes on.
    figures = await asyncio.to_thread(lambda: [_step(row) for row in steps])
    return json_ok({"window": {"since": since, "until": until}, **summary, "steps": figures})


async def refresher(app: web.Application) -> AsyncIterator[None]:
    """The background refresher of per-day summaries, for the app's lifetime (cleanup_ctx)."""
    app[REFRESHER] = pipeline_days.Refresher(app[STORE].pool)
    yield
    await app[REFRESHER].close()


def _window(p: dict[str, Any]) -> tuple[datetime, datetime]:
    until = p["until"] or datetime.now(timezone.utc)
    since = p["since"] or until - DEFAULT_WINDOW
    if since >= until:
        raise QueryError(400, "since must be before until")
    return since, until


def _pipeline(row: Any) -> dict[str, Any]:
    return {
        "name": row["name"],
        "run_count": row["run_count"],
        "failed_count": row["failed"],
        "failure_rate": _round(row["failed"] / row["finished"]) if row["finished"] else None,
        "duration_ms": _percentiles(row["duration_ms"]),
        "avg_cost": row["avg_cost"],
        "last_run_at": row["last_run_at"],
    }


def _step(row: Any) -> dict[str, Any]:
    figures = pipeline_stats.step_figures(row)
    figures["avg_drop_rate"], figures["p95_drop_rate"] = _round(figures["avg_drop_rate"]), _round(figures["p95_drop_rate"])
    figures["duration_ms"] = _percentiles((figures["duration_ms"]["p50"], figures["duration_ms"]["p95"]))
    return figures


def _percentiles(values: list[float | None] | None) -> dict[str, float | None]:
    p50, p95 = values or (None, None)
    return {"p50": _round(p50, 3), "p95": _round(p95, 3)}


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)

