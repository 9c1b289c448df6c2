"""Candidate lineage: where one candidate went through a run, and a run's recorded decisions.

Decisions are what the SDK recorded per candidate (`xray.step.decisions`; sampled unless the
step captured in full), so a candidate may be missing from a step that did see it.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from aiohttp import web

from . import sql
from .params import CURSOR, Param, convert, decode_cursor, encode_cursor, limit_param, link_headers, parse
from ..web import PROJECT, json_ok
from .routes import STORE, QueryError, find_run, shown_run_id

_CANDIDATE = Param("candidate_id", "string", "the candidate's id as the SDK recorded it (`id_fn`)")
MAX_PATH = 10_000  # decisions for one candidate in one run; more is a loop, and the first ones tell the story

DECISION_PARAMS = (
    limit_param(),
    Param("step", "string", "a step name, or a step id (span id)"),
    Param("accepted", "boolean", "true: kept; false: dropped"),
    Param("reason", "string", "exact rejection (or acceptance) reason"),
    Param("candidate", "string", "one candidate id"),
    CURSOR,
)


async def candidate_path(request: web.Request) -> web.Response:
    run = await _run(request)
    parse(request.query, ())
    candidate = request.match_info["candidate_id"]
    where = _run_where(request, run["id"])
    where.add("d.elem ->> 'id' = {}", convert(_CANDIDATE, candidate))
    rows = await request.app[STORE].pool.fetch(
        sql.RUN_DECISIONS.format(where=where.sql(), limit=MAX_PATH), *where.args)
    if not rows:
        raise QueryError(404, f"no decision recorded for candidate {candidate[:64]!r} in run {shown_run_id(request, run['id'], run['trace_id'])} "
                              "(decisions are sampled unless a step captures in full)")
    shown = shown_run_id(request, run["id"], run["trace_id"])
    return json_ok(lineage({"id": shown, "name": run["name"], "status": run["status"]}, candidate,
                           [_decision(r) for r in rows]))


def lineage(run: dict[str, Any], candidate: str, decisions: list[dict[str, Any]]) -> dict[str, Any]:
    """Pure: the candidate's path (decisions in step time order), where it left, and the outcome."""
    left = next((d for d in decisions if d["accepted"] is False), None)
    return {
        "run": run,
        "candidate_id": candidate,
        "outcome": "dropped" if left else "kept",
        "left_at": {"step_id": left["step_id"], "step": left["step"], "type": left["type"], "reason": left["reason"]}
        if left else None,
        "path": decisions,
    }


async def list_decisions(request: web.Request) -> web.Response:
    """A JSON array of recorded decisions in step time order; next page in Link / X-Next-Cursor."""
    run = await _run(request)
    p = parse(request.query, DECISION_PARAMS)
    where = _run_where(request, run["id"])
    if p["step"] is not None:
        where.add("(s.name = {} OR s.span_id = {})", p["step"], p["step"])
    if p["accepted"] is not None:
        where.add("d.elem -> 'accepted' = {}::jsonb", json.dumps(p["accepted"]))
    if p["reason"] is not None:
        where.add("d.elem ->> 'reason' = {}", p["reason"])
    if p["candidate"] is not None:
        where.add("d.elem ->> 'id' = {}", p["candidate"])
    after = decode_cursor(p["cursor"], "decisions", (datetime, str, int))
    if after:
        where.add(f"({sql.STEP_TIME}, s.span_id, d.ord) > ({{}}, {{}}, {{}})", *after)
    rows = await request.app[STORE].pool.fetch(
        sql.RUN_DECISIONS.format(where=where.sql(), limit=where.arg(p["limit"])), *where.args)
    headers = {}
    if len(rows) == p["limit"]:
        last = rows[-1]
        headers = link_headers(request.rel_url, encode_cursor("decisions", [last["step_time"], last["span_id"],
                                                                            last["ord"]]))
    return json_ok([_decision(r) for r in rows], headers=headers)


def _run_where(request: web.Request, run_id: uuid.UUID) -> sql.Where:
    """$1 is the run; a project-bound key sees only its own project's steps' decisions."""
    where = sql.Where()
    where.arg(run_id)
    if request.get(PROJECT) is not None:
        where.add("s.service = {}", request[PROJECT])
    return where


async def _run(request: web.Request) -> Any:
    row, _ = await find_run(request, request.match_info["run_id"])
    return row


def _decision(row: Any) -> dict[str, Any]:
    elem = json.loads(row["elem"])
    accepted = elem.get("accepted")
    candidate = elem.get("id")
    return {
        "step_id": row["span_id"],
        "step": row["name"],
        "type": row["type"],
        "candidate_id": candidate if candidate is None or isinstance(candidate, str) else json.dumps(candidate),
        "accepted": accepted if isinstance(accepted, bool) else None,
        "reason": elem.get("reason"),
        "score": elem.get("score"),
        "rank": elem.get("rank"),
        "step_input_count": row["input_count"],
        "step_output_count": row["output_count"],
        "started_at": row["started_at"],
    }

