"""GET /runs: runs with filters (name, text, status, service, tags, time, cost, errors) and a sort."""

from __future__ import annotations

import uuid
from datetime import datetime

from aiohttp import web

from . import sql
from .params import CURSOR, SINCE, TAG, UNTIL, Param, decode_cursor, encode_cursor, limit_param, link_headers, parse
from ..web import json_ok
from .routes import STORE, run_summary, scoped_query

# sort name → (SQL expression, Python type of its value, column of the row holding it)
_SORTS = {
    "started_at": ("r.started_at", datetime, "started_at"),
    "cost": (sql.RUN_COST, float, "total_cost"),
    "duration": (sql.RUN_DURATION_MS, float, "sort_key"),
    "step_count": ("r.step_count", int, "step_count"),
}

PARAMS = (
    limit_param(),
    Param("name", "string", "exact run (pipeline) name"),
    Param("q", "string", "text search: runs whose name contains this, case-insensitive"),
    Param("status", "string", "run status", enum=("running", "completed", "failed")),
    Param("service", "string", "the `service.name` of the run's resource"),
    TAG,
    SINCE,
    UNTIL,
    Param("min_cost", "number", "total cost of the run's steps at least this (USD)", minimum=0, maximum=1e12),
    Param("max_cost", "number", "total cost of the run's steps at most this (USD)", minimum=0, maximum=1e12),
    Param("has_error", "boolean", "true: the run failed or any of its steps did; false: neither"),
    Param("sort", "string", "order: `-started_at` (default, newest first), `started_at`, `-cost`, `cost`, "
                            "`-duration`, `duration`, `-step_count`, `step_count`; `-` means descending. "
                            "Sorting by duration lists only finished runs",
          enum=tuple(f"{d}{k}" for k in _SORTS for d in ("-", "")), default="-started_at"),
    CURSOR,
)


async def list_runs(request: web.Request) -> web.Response:
    """A JSON array (as the original X-Ray API); the next page is in the Link / X-Next-Cursor headers."""
    p = parse(scoped_query(request), PARAMS)
    where = sql.Where()
    if p["name"] is not None:
        where.add("r.name = {}", p["name"])
    if p["q"]:
        where.add("r.name ILIKE {}", sql.like_pattern(p["q"]))
    if p["status"]:
        where.add("r.status = {}", p["status"].upper())
    if p["service"] is not None:
        where.add("r.service = {}", p["service"])
    for key, value in p["tag"]:
        sql.tag_clause(where, key, value)
    if p["since"]:
        where.add("r.started_at >= {}", p["since"])
    if p["until"]:
        where.add("r.started_at < {}", p["until"])
    if p["min_cost"] is not None:
        where.add(f"{sql.RUN_COST} >= {{}}", p["min_cost"])
    if p["max_cost"] is not None:
        where.add(f"{sql.RUN_COST} <= {{}}", p["max_cost"])
    if p["has_error"] is not None:
        where.add(sql.RUN_HAS_ERROR if p["has_error"] else f"NOT {sql.RUN_HAS_ERROR}")

    sort = p["sort"]
    expr, kind, column = _SORTS[sort.lstrip("-")]
    direction, compare = ("DESC", "<") if sort.startswith("-") else ("ASC", ">")
    if sort.lstrip("-") == "duration":
        where.add("r.completed_at IS NOT NULL")
    after = decode_cursor(p["cursor"], sort, (kind, uuid.UUID))
    if after:
        where.add(f"({expr}, r.id) {compare} ({{}}, {{}})", *after)
    statement = sql.LIST_RUNS_FILTERED.format(
        where=where.sql(), order=f"{expr} {direction}, r.id {direction}", limit=where.arg(p["limit"]))
    if column == "sort_key":
        statement = statement.replace("SELECT", f"SELECT {expr} AS sort_key,", 1)
    rows = await request.app[STORE].pool.fetch(statement, *where.args)
    headers = {}
    if len(rows) == p["limit"]:
        last = rows[-1]
        headers = link_headers(request.rel_url, encode_cursor(sort, [last[column], last["id"]]))
    return json_ok([run_summary(r, request) for r in rows], headers=headers)
