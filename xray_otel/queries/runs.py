"""GET /runs/{id}: one run. GET /runs: runs with filters (name, text, status, service, tags, time,
cost, errors) and a sort."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..store.filters import RUN_SORTS, Page, RunFilters
from ..web import json_ok
from .common import fetch_run, reads, run_summary, scoped_query
from .params import CURSOR, SINCE, TAG, UNTIL, Param, decode_cursor, encode_cursor, limit_param, link_headers, parse

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
          enum=tuple(f"{d}{k}" for k in RUN_SORTS for d in ("-", "")), default="-started_at"),
    CURSOR,
)


async def get_run(request: web.Request) -> web.Response:
    run, _ = await fetch_run(request, request.match_info["run_id"])
    return json_ok(run)


async def list_runs(request: web.Request) -> web.Response:
    """A JSON array (as the original X-Ray API); the next page is in the Link / X-Next-Cursor headers."""
    filters, page = run_query(scoped_query(request))
    rows = await reads(request).list_runs(filters, page)
    headers = {}
    if len(rows) == page.limit:
        last = rows[-1]
        headers = link_headers(request.rel_url, encode_cursor(page.sort, [last["sort_key"], last["id"]]))
    return json_ok([run_summary(r, request) for r in rows], headers=headers)


def run_query(query: Any) -> tuple[RunFilters, Page]:
    """The store's filters and page for a /runs query string."""
    p = parse(query, PARAMS)
    filters = RunFilters(
        name=p["name"], name_contains=p["q"], status=p["status"].upper() if p["status"] else None,
        service=p["service"], tags=tuple(p["tag"]), since=p["since"], until=p["until"],
        min_cost=p["min_cost"], max_cost=p["max_cost"], has_error=p["has_error"])
    sort = p["sort"]
    return filters, Page(sort, decode_cursor(p["cursor"], sort, RUN_SORTS[sort.lstrip("-")]), p["limit"])
