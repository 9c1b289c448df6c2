"""Candidate lineage: where one candidate went through a run, and a run's recorded decisions.

Decisions are what the SDK recorded per candidate (`xray.step.decisions`; sampled unless the
step captured in full), so a candidate may be missing from a step that did see it.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ..store.filters import DECISION_KEY, DecisionFilters
from ..store.reads import Row
from ..web import PROJECT, json_ok
from .analysis import REJECTED_BY_WRAPPER
from .common import QueryError, find_run, project_steps, reads, shown_run_id
from .params import CURSOR, Param, convert, decode_cursor, encode_cursor, limit_param, link_headers, parse

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
    rows = await reads(request).decisions(
        run["id"], DecisionFilters(service=request.get(PROJECT), candidate=convert(_CANDIDATE, candidate)),
        None, MAX_PATH)
    if not rows:
        raise QueryError(404, f"no decision recorded for candidate {candidate[:64]!r} in run {shown_run_id(request, run['id'], run['trace_id'])} "
                              "(decisions are sampled unless a step captures in full)")
    shown = shown_run_id(request, run["id"], run["trace_id"])
    path = [_decision(r) for r in rows]
    if all(d["accepted"] is not False for d in path):  # kept everywhere it was recorded: or cut by a wrapper?
        parents = {r["span_id"]: r["parent_span_id"] for r in rows}
        path += not_passed_on(path, parents, project_steps(request, await reads(request).wrappers(run["id"])))
    return json_ok(lineage({"id": shown, "name": run["name"], "status": run["status"]}, candidate, path))


DERIVED_NOT_PASSED_ON = ("not among the decisions of the retrieval step wrapping the one that kept it, which "
                         "recorded one for every document it returned")


def not_passed_on(path: list[dict[str, Any]], parents: dict[str, str | None],
                  wrappers: list[Row]) -> list[dict[str, Any]]:
    """Pure. A candidate kept by a retriever that another retrieval or rank step wraps (LangChain's
    ContextualCompressionRetriever: 20 found, 5 returned), and absent from the wrapper's decisions though
    it recorded one for each document it returned: the wrapper dropped it, ``below_top_k``. Nothing when
    the wrapper's decisions are not complete (then the candidate's fate there is not known)."""
    by_id = {w["span_id"]: w for w in wrappers}
    seen = {d["step_id"] for d in path}
    for decision in path:
        wrapper = by_id.get(parents.get(decision["step_id"]))
        if (decision["accepted"] and wrapper is not None and wrapper["span_id"] not in seen
                and wrapper["output_count"] is not None and wrapper["decision_count"] == wrapper["output_count"]):
            return [{"step_id": wrapper["span_id"], "step": wrapper["name"], "type": wrapper["type"],
                     "candidate_id": decision["candidate_id"], "accepted": False, "reason": REJECTED_BY_WRAPPER,
                     "score": None, "rank": None, "step_input_count": wrapper["input_count"],
                     "step_output_count": wrapper["output_count"], "started_at": wrapper["started_at"],
                     "derived": DERIVED_NOT_PASSED_ON}]
    return []


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
    # A project-bound key sees only its own project's steps' decisions.
    filters = DecisionFilters(service=request.get(PROJECT), step=p["step"], accepted=p["accepted"],
                              reason=p["reason"], candidate=p["candidate"])
    after = decode_cursor(p["cursor"], "decisions", DECISION_KEY)
    rows = await reads(request).decisions(run["id"], filters, after, p["limit"])
    headers = {}
    if len(rows) == p["limit"]:
        last = rows[-1]
        headers = link_headers(request.rel_url, encode_cursor("decisions", [last["step_time"], last["span_id"],
                                                                            last["ord"]]))
    return json_ok([_decision(r) for r in rows], headers=headers)


async def _run(request: web.Request) -> Row:
    row, _ = await find_run(request, request.match_info["run_id"])
    return row


def _decision(row: Row) -> dict[str, Any]:
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

