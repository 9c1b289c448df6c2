"""GET /steps: search steps across every run and pipeline, e.g. filters that dropped over 90%."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg
from aiohttp import web

from . import sql
from .params import CURSOR, SINCE, TAG, UNTIL, Param, decode_cursor, encode_cursor, limit_param, link_headers, parse
from ..web import json_ok
from .routes import STORE, _json, scoped_query, shown_run_id

# sort name → (SQL expression, Python type of its value). A sort by a value a step may lack
# (drop rate, duration, input count) lists only the steps that have it.
_SORTS: dict[str, tuple[str, type]] = {
    "started_at": (sql.STEP_TIME, datetime),
    "drop_rate": (sql.DROP_RATE, float),
    "cost": ("s.cost", float),
    "duration": (sql.STEP_DURATION_MS, float),
    "input_count": ("s.input_count", int),
}
_NEEDS = {"drop_rate": sql.HAS_DROP_RATE, "duration": sql.STEP_FINISHED,
          "input_count": "s.input_count IS NOT NULL"}

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
    Param("status", "string", "step status", enum=("completed", "failed")),
    Param("has_error", "boolean", "true: failed or carrying an error message; false: neither"),
    SINCE,
    UNTIL,
    TAG,
    Param("sort", "string", "order: `-started_at` (default, newest first), `-drop_rate`, `-cost`, `-duration`, "
                            "`-input_count`, or any of them without `-` for ascending. Sorting by a figure a step "
                            "may lack lists only steps that have it",
          enum=tuple(f"{d}{k}" for k in _SORTS for d in ("-", "")), default="-started_at"),
    CURSOR,
)

_SELECT = f"""
SELECT s.run_id, r.trace_id, r.name AS run_name, s.span_id, s.parent_span_id, s.name, s.type, s.status, s.service,
       s.cost, s.cost_source, s.model, s.input_count, s.output_count, s.rejections, s.reasoning, s.started_at,
       s.completed_at, s.error, {{key}} AS sort_key
FROM steps s
JOIN runs r ON r.id = s.run_id
WHERE {sql._IS_STEP} AND {{where}}
ORDER BY {{key}} {{direction}}, s.run_id {{direction}}, s.span_id {{direction}}
LIMIT {{limit}}
"""


def build_query(query: Any) -> tuple[str, list[Any], dict[str, Any]]:
    """The SQL, its arguments and the parsed parameters for a /steps query string (bench/ EXPLAINs it)."""
    p = parse(query, PARAMS)
    where = sql.Where()
    for column in ("type", "name", "service"):
        if p[column] is not None:
            where.add(f"s.{column} = {{}}", p[column])
    if p["run_name"] is not None:
        where.add("r.name = {}", p["run_name"])
    if p["min_drop_rate"] is not None or p["max_drop_rate"] is not None:
        where.add(sql.HAS_DROP_RATE)
    if p["min_drop_rate"] is not None:
        where.add(f"{sql.DROP_RATE} >= {{}}", p["min_drop_rate"])
    if p["max_drop_rate"] is not None:
        where.add(f"{sql.DROP_RATE} <= {{}}", p["max_drop_rate"])
    if p["min_input_count"] is not None:
        where.add("s.input_count >= {}", p["min_input_count"])
    if p["status"]:
        where.add("s.status = {}", p["status"].upper())
    if p["has_error"] is not None:
        where.add(sql.STEP_HAS_ERROR if p["has_error"] else f"NOT {sql.STEP_HAS_ERROR}")
    if p["since"]:
        where.add(f"{sql.STEP_TIME} >= {{}}", p["since"])
    if p["until"]:
        where.add(f"{sql.STEP_TIME} < {{}}", p["until"])
    for key, value in p["tag"]:
        sql.tag_clause(where, key, value)

    sort = p["sort"]
    key, kind = _SORTS[sort.lstrip("-")]
    if sort.lstrip("-") in _NEEDS and _NEEDS[sort.lstrip("-")] not in where.clauses:
        where.add(_NEEDS[sort.lstrip("-")])
    direction, compare = ("DESC", "<") if sort.startswith("-") else ("ASC", ">")
    after = decode_cursor(p["cursor"], sort, (kind, uuid.UUID, str))
    if after:
        where.add(f"({key}, s.run_id, s.span_id) {compare} ({{}}, {{}}, {{}})", *after)
    statement = _SELECT.format(key=key, where=where.sql(), direction=direction, limit=where.arg(p["limit"]))
    return statement, where.args, p


async def search_steps(request: web.Request) -> web.Response:
    """A JSON array of steps, each with its run id and run name; next page in Link / X-Next-Cursor."""
    statement, args, p = build_query(scoped_query(request))
    rows = await request.app[STORE].pool.fetch(statement, *args)
    headers = {}
    if len(rows) == p["limit"]:
        last = rows[-1]
        headers = link_headers(request.rel_url, encode_cursor(p["sort"], [last["sort_key"], last["run_id"],
                                                                          last["span_id"]]))
    return json_ok([step_hit(r, shown_run_id(request, r["run_id"], r["trace_id"])) for r in rows], headers=headers)


def step_hit(row: asyncpg.Record, run_id: str) -> dict[str, Any]:
    n_in, n_out = row["input_count"], row["output_count"]
    dropped = n_in - n_out if n_in is not None and n_out is not None else None
    start, end = row["started_at"], row["completed_at"]
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
        "rejections": _json(row["rejections"]),
        "reasoning": row["reasoning"],
        "cost": row["cost"],
        "cost_source": row["cost_source"],
        "model": row["model"],
        "started_at": start,
        "completed_at": end,
        "duration_ms": round((end - start).total_seconds() * 1000, 3) if start and end else None,
        "error": row["error"],
    }
