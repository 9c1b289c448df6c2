"""GET /steps: search steps across every run and pipeline, e.g. filters that dropped over 90%."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..store.filters import STEP_SORTS, Page, StepFilters
from ..store.reads import Row
from ..web import json_ok
from .common import duration_ms, json_value, reads, scoped_query, shown_run_id
from .params import CURSOR, SINCE, TAG, UNTIL, Param, decode_cursor, encode_cursor, limit_param, link_headers, parse

PARAMS = (
    limit_param(),
    Param("type", "string", "step type: llm, retrieval, filter, rank, logic, … (lower case)"),
    Param("name", "string", "exact step name"),
    Param("run_name", "string", "exact name of the step's run (pipeline)"),
    Param("service", "string", "the `service.name` of the step's resource"),
    Param("min_drop_rate", "number", "(input_count − output_count) / input_count at least this; "
                                     "only steps with both counts match", minimum=-1e12, maximum=1e12),
    Param("max_drop_rate", "number", "drop rate at most this", minimum=-1e12, maximum=1e12),
    Param("min_input_count", "integer", "steps that saw at least this many candidates", minimum=0),
    Param("reason", "string", "exact rejection reason the step counted at least one candidate under"),
    Param("status", "string", "step status", enum=("completed", "failed")),
    Param("has_error", "boolean", "true: failed or carrying an error message; false: neither"),
    SINCE,
    UNTIL,
    TAG,
    Param("sort", "string", "order: `-started_at` (default, newest first), `-drop_rate`, `-cost`, `-duration`, "
                            "`-input_count`, or any of them without `-` for ascending. Sorting by a figure a step "
                            "may lack lists only steps that have it",
          enum=tuple(f"{d}{k}" for k in STEP_SORTS for d in ("-", "")), default="-started_at"),
    CURSOR,
)


async def search_steps(request: web.Request) -> web.Response:
    """A JSON array of steps, each with its run id and run name; next page in Link / X-Next-Cursor."""
    filters, page = step_query(scoped_query(request))
    rows = await reads(request).search_steps(filters, page)
    headers = {}
    if len(rows) == page.limit:
        last = rows[-1]
        headers = link_headers(request.rel_url, encode_cursor(page.sort, [last["sort_key"], last["run_id"],
                                                                       last["span_id"]]))
    return json_ok([step_hit(r, shown_run_id(request, r["run_id"], r["trace_id"])) for r in rows], headers=headers)


def step_query(query: Any) -> tuple[StepFilters, Page]:
    """The store's filters and page for a /steps query string (bench/ EXPLAINs what they read)."""
    p = parse(query, PARAMS)
    filters = StepFilters(
        type=p["type"], name=p["name"], run_name=p["run_name"], service=p["service"],
        min_drop_rate=p["min_drop_rate"], max_drop_rate=p["max_drop_rate"], min_input_count=p["min_input_count"],
        reason=p["reason"], status=p["status"].upper() if p["status"] else None, has_error=p["has_error"], since=p["since"],
        until=p["until"], tags=tuple(p["tag"]))
    sort = p["sort"]
    return filters, Page(sort, decode_cursor(p["cursor"], sort, STEP_SORTS[sort.lstrip("-")]), p["limit"])


def step_hit(row: Row, run_id: str) -> dict[str, Any]:
    n_in, n_out = row["input_count"], row["output_count"]
    dropped = n_in - n_out if n_in is not None and n_out is not None else None
    return {
        "id": row["span_id"],
        "run_id": run_id,
        "run_name": row["run_name"],
        "parent_id": row["parent_span_id"],
        "name": row["name"],
        "type": row["type"],
        "status": row["status"],
        "service": row["service"],
        "input_count": n_in,
        "output_count": n_out,
        "dropped": dropped,
        "drop_rate": round(dropped / n_in, 6) if dropped is not None and n_in else None,
        "rejections": json_value(row["rejections"]),
        "reasoning": row["reasoning"],
        "cost": row["cost"],
        "cost_source": row["cost_source"],
        "model": row["model"],
        "started_at": row["started_at"],
        "completed_at": row["completed_at"],
        "duration_ms": duration_ms(row["started_at"], row["completed_at"]),
        "error": row["error"],
        "sample": json_value(row["sample"]) or None,
    }
