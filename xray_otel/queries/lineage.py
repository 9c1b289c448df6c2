"""Candidate lineage: where one candidate went through a run, and a run's candidates step by step.

Two records answer, per step:

- **outcomes** (`xray.step.outcomes.*`, store/outcomes.py): every candidate the step decided on, exact.
  When a step's outcomes are incomplete (a part missing, fewer outcomes than its total, a part refused
  or cut on the way), a candidate not found there is ``unknown`` at that step, with why; never ``kept``.
- **decisions** (`xray.step.decisions`): what the SDK recorded per candidate, a sample unless the step
  captured in full; a candidate may be missing from a step that did see it. A step that sent outcomes
  takes its candidates' score, label and payload from its decisions, when the sample holds them.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ..store.filters import DECISION_KEY, DecisionFilters
from ..store.outcomes import DISAGREE, INCOMPLETE, Part, state
from ..store.reads import Reads, Row
from ..web import PROJECT, json_ok
from .analysis import REJECTED_BY_WRAPPER
from .common import QueryError, find_run, project_steps, reads, shown_run_id
from .params import CURSOR, Param, convert, decode_cursor, encode_cursor, limit_param, link_headers, parse

_CANDIDATE = Param("candidate_id", "string", "the candidate's id as the SDK recorded it (`id_fn`)")
MAX_PATH = 10_000  # entries for one candidate in one run; more is a loop, and the first ones tell the story
PARTS_PER_READ = 4  # outcome parts read at once when listing a step's candidates
_PART = 2**32  # an outcome's place in its step, for a page's key: part * _PART + index in the part
# Keys of a sampled decision object that are shown as fields of their own; the rest is its payload.
_DECISION_FIELDS = frozenset({"id", "accepted", "reason", "score", "rank", "label"})
_SAMPLED_AS = "sampled_as"  # conventions.DECISION_SAMPLED_AS: why a payload is in the step's sample

DECISION_PARAMS = (
    limit_param(),
    Param("step", "string", "a step name, or a step id (span id)"),
    Param("accepted", "boolean", "true: kept; false: dropped"),
    Param("reason", "string", "exact rejection (or acceptance) reason"),
    Param("candidate", "string", "one candidate id"),
    Param("prefix", "string", "candidate ids that start with this text"),
    CURSOR,
)


# --- GET /runs/{run_id}/candidates/{candidate_id} ---------------------------------------------------------


async def candidate_path(request: web.Request) -> web.Response:
    run = await _run(request)
    parse(request.query, ())
    candidate = convert(_CANDIDATE, request.match_info["candidate_id"])
    store = reads(request)
    steps = project_steps(request, await store.candidate_steps(run["id"]))
    exact = [s for s in steps if s["has_outcomes"]]
    parts = await store.outcome_parts(run["id"], [s["span_id"] for s in exact]) if exact else []
    rows = await store.decisions(run["id"], DecisionFilters(service=request.get(PROJECT), candidate=candidate),
                                 None, MAX_PATH)
    path = candidate_entries(steps, parts, rows, candidate)[:MAX_PATH]
    shown = shown_run_id(request, run["id"], run["trace_id"])
    if not path:
        raise QueryError(404, not_found_message(candidate, shown, steps))
    if all(d["accepted"] is not False for d in path):  # kept everywhere it was recorded: or cut by a wrapper?
        parents = {s["span_id"]: s["parent_span_id"] for s in steps}
        path += not_passed_on(path, parents, project_steps(request, await store.wrappers(run["id"])))
    return json_ok(lineage({"id": shown, "name": run["name"], "status": run["status"]}, candidate, path))


def candidate_entries(steps: list[Row], parts: list[Part], rows: list[Row], candidate: str) -> list[dict[str, Any]]:
    """Pure but for unpacking: the candidate's entries at each step, in step time order. A step that sent
    outcomes gives one entry per time it saw the candidate (exact), or an ``unknown`` one when it did not and
    its outcomes are incomplete; a step that recorded decisions only gives those it recorded."""
    by_step: dict[str, list[Part]] = {}
    for part in parts:
        by_step.setdefault(part.span_id, []).append(part)
    samples: dict[str, list[Row]] = {}
    for row in rows:
        samples.setdefault(row["span_id"], []).append(row)
    path: list[dict[str, Any]] = []
    for step in steps:
        sampled = samples.get(step["span_id"], [])
        if not step["has_outcomes"]:
            path += [_decision(r) for r in sampled]
            continue
        seen = [(part, i) for part in by_step.get(step["span_id"], []) for i in part.find(candidate)]
        status, why = state(step)
        if status == INCOMPLETE and why is not None and DISAGREE in why:  # found, but in which copy?
            path.append(_unknown(step, candidate, why))
            continue
        elems = [_elem(r) for r in sampled]
        for k, (part, i) in enumerate(seen):
            path.append(_outcome(step, part, i, candidate, elems[k] if k < len(elems) else None))
        if not seen and status == INCOMPLETE:
            path.append(_unknown(step, candidate, why))
    return path


def not_found_message(candidate: str, run_id: str, steps: list[Row]) -> str:
    """The 404's message, true of the run: which steps answer for every candidate, which only for a sample."""
    head = f"no decision recorded for candidate {candidate[:64]!r} in run {run_id}"
    exact = [s["name"] for s in steps if s["has_outcomes"]]
    sampled = [s["name"] for s in steps if not s["has_outcomes"]]
    if not steps:
        return head + " (no step of this run recorded candidates)"
    said = []
    if exact:  # all complete: an incomplete one would have answered unknown
        said.append(f"it is not among the outcomes of {_names(exact)}, which recorded every candidate they "
                    "decided on, so it reached none of them")
    if sampled:
        said.append(f"{_names(sampled)} recorded a sample of {'its' if len(sampled) == 1 else 'their'} decisions "
                    "only (decisions are sampled unless a step captures in full or sends outcomes), so it may have "
                    "passed through unrecorded")
    return f"{head}: " + "; ".join(said)


def _names(names: list[str]) -> str:
    shown = ", ".join(repr(n[:64]) for n in names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return f"step{'s' if len(names) > 1 else ''} {shown}"


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
                     "label": None, "payload": None, "sample": None, "outcome": "dropped", "source": "decisions",
                     "derived": DERIVED_NOT_PASSED_ON}]
    return []


def lineage(run: dict[str, Any], candidate: str, decisions: list[dict[str, Any]]) -> dict[str, Any]:
    """Pure: the candidate's path (entries in step time order), where it left, and the outcome: ``dropped``
    at the first step that dropped it; else ``unknown`` when a step whose outcomes are incomplete may have
    (``why`` says which and why); else ``kept``."""
    left = next((d for d in decisions if d["accepted"] is False), None)
    unknown = [d for d in decisions if d["accepted"] is None and d.get("outcome") == "unknown"]
    # What the candidate was (label_fn) is the candidate's, not a step's: a step whose payload sample
    # missed it shows what another step's sample said.
    label = next((d["label"] for d in decisions if d.get("label")), None)
    for d in decisions:
        if d.get("label") is None and label is not None:
            d["label"] = label
    outcome = "dropped" if left else "unknown" if unknown else "kept"
    return {
        "run": run,
        "candidate_id": candidate,
        "outcome": outcome,
        "left_at": {"step_id": left["step_id"], "step": left["step"], "type": left["type"], "reason": left["reason"]}
        if left else None,
        "why": "; ".join(f"step {d['step']!r}: {d['why']}" for d in unknown) if outcome == "unknown" else None,
        "path": decisions,
    }


# --- GET /runs/{run_id}/candidates ----------------------------------------------------------------------


async def list_decisions(request: web.Request) -> web.Response:
    """A JSON array of the run's candidates step by step (every outcome of a step that sent them, the
    recorded decisions of one that did not), in step time order; next page in Link / X-Next-Cursor."""
    run = await _run(request)
    p = parse(request.query, DECISION_PARAMS)
    after = decode_cursor(p["cursor"], "decisions", DECISION_KEY)
    # A project-bound key sees only its own project's steps' candidates.
    filters = DecisionFilters(service=request.get(PROJECT), accepted=p["accepted"], reason=p["reason"],
                              candidate=p["candidate"], prefix=p["prefix"])
    store = reads(request)
    steps = [s for s in project_steps(request, await store.candidate_steps(run["id"]))
             if p["step"] is None or p["step"] in (s["name"], s["span_id"])]
    if after:
        steps = [s for s in steps if (s["step_time"], s["span_id"]) >= (after[0], after[1])]
    page: list[tuple[list[Any], dict[str, Any]]] = []
    limit = p["limit"]
    i = 0
    while i < len(steps) and len(page) < limit:
        if steps[i]["has_outcomes"]:
            start = after[2] + 1 if after and (steps[i]["step_time"], steps[i]["span_id"]) == (after[0], after[1]) else 0
            page += await _step_outcomes(store, run["id"], steps[i], filters, start, limit - len(page))
            i += 1
            continue
        j = i
        while j < len(steps) and not steps[j]["has_outcomes"]:  # consecutive sample-only steps: one read
            j += 1
        span_ids = tuple(s["span_id"] for s in steps[i:j])
        # A sampled decision's place is its ordinality in a JSON array (int4 in SQL): a cursor's larger
        # place (an outcome's, or a forged one) means past every decision of that step.
        sql_after = after and [after[0], after[1], min(after[2], 2**31 - 1)]
        rows = await store.decisions(run["id"], _with_steps(filters, span_ids), sql_after, limit - len(page))
        page += [([r["step_time"], r["span_id"], r["ord"]], _decision(r)) for r in rows]
        i = j
    headers = {}
    if len(page) == limit:
        headers = link_headers(request.rel_url, encode_cursor("decisions", page[-1][0]))
    return json_ok([entry for _, entry in page], headers=headers)


async def _step_outcomes(store: Reads, run_id: Any, step: Row, f: DecisionFilters, start: int,
                         limit: int) -> list[tuple[list[Any], dict[str, Any]]]:
    """Up to ``limit`` outcomes of one step passing ``f``, from place ``start`` on (part * _PART + index)."""
    found: list[tuple[list[Any], dict[str, Any]]] = []
    samples: dict[str, list[dict[str, Any]]] | None = None
    first = start // _PART
    status, why = state(step)
    disputed = status == INCOMPLETE and why is not None and DISAGREE in why  # listed, as unknown
    while len(found) < limit:
        parts = await store.step_outcome_parts(run_id, step["span_id"], first, PARTS_PER_READ)
        for part in parts:
            after = start - part.part * _PART if part.part == start // _PART else 0
            for i in part.matching(accepted=f.accepted, reason=f.reason, candidate=f.candidate, prefix=f.prefix,
                                   after=max(after, 0)):
                if samples is None:
                    samples = await _samples(store, run_id, step, f)
                candidate = part.ids()[i]
                sample = samples.get(candidate)
                entry = (_unknown(step, candidate, why) if disputed else
                         _outcome(step, part, i, candidate, sample[0] if sample else None))
                found.append(([step["step_time"], step["span_id"], part.part * _PART + i], entry))
                if len(found) == limit:
                    return found
        if len(parts) < PARTS_PER_READ:
            return found
        first = parts[-1].part + 1
    return found


async def _samples(store: Reads, run_id: Any, step: Row, f: DecisionFilters) -> dict[str, list[dict[str, Any]]]:
    """The step's sampled decisions by candidate id, for their score, label and payload."""
    if not step["decision_count"]:
        return {}
    rows = await store.decisions(run_id, DecisionFilters(service=f.service, candidate=f.candidate, prefix=f.prefix,
                                                         span_ids=(step["span_id"],)), None, MAX_PATH)
    by_id: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        elem = _elem(row)
        by_id.setdefault(str(elem.get("id")), []).append(elem)
    return by_id


def _with_steps(f: DecisionFilters, span_ids: tuple[str, ...]) -> DecisionFilters:
    return DecisionFilters(service=f.service, accepted=f.accepted, reason=f.reason, candidate=f.candidate,
                           prefix=f.prefix, span_ids=span_ids)


# --- entries ---------------------------------------------------------------------------------------------


async def _run(request: web.Request) -> Row:
    row, _ = await find_run(request, request.match_info["run_id"])
    return row


def _step_fields(step: Row) -> dict[str, Any]:
    return {"step_id": step["span_id"], "step": step["name"], "type": step["type"]}


def _tail(step: Row) -> dict[str, Any]:
    return {"step_input_count": step["input_count"], "step_output_count": step["output_count"],
            "started_at": step["started_at"]}


def _outcome(step: Row, part: Part, index: int, candidate: str, sample: dict[str, Any] | None) -> dict[str, Any]:
    """An exact entry: the step's outcome for the candidate at ``index`` of ``part``, with the sample's payload."""
    code = part.code(index)
    rank = part.rank(index)
    sample = sample or {}
    return {
        **_step_fields(step),
        "candidate_id": candidate,
        "accepted": code == 0,
        "reason": part.reason(code),
        "score": sample.get("score"),
        "rank": rank if rank is not None else _int_or_none(sample.get("rank")),
        **_tail(step),
        "label": _label(sample),
        "payload": _payload(sample),
        "sample": sample_of(step, sample),
        "outcome": "kept" if code == 0 else "dropped",
        "source": "outcomes",
    }


def _unknown(step: Row, candidate: str, why: str | None) -> dict[str, Any]:
    return {
        **_step_fields(step),
        "candidate_id": candidate, "accepted": None, "reason": None, "score": None, "rank": None,
        **_tail(step),
        "label": None, "payload": None, "sample": sample_of(step, {}), "outcome": "unknown", "source": "outcomes",
        "why": f"not among the outcomes this step holds, which are incomplete: {why}",
    }


def _decision(row: Row) -> dict[str, Any]:
    elem = _elem(row)
    accepted = elem.get("accepted")
    candidate = elem.get("id")
    accepted = accepted if isinstance(accepted, bool) else None
    return {
        "step_id": row["span_id"],
        "step": row["name"],
        "type": row["type"],
        "candidate_id": candidate if candidate is None or isinstance(candidate, str) else json.dumps(candidate),
        "accepted": accepted,
        "reason": elem.get("reason"),
        "score": elem.get("score"),
        "rank": elem.get("rank"),
        "step_input_count": row["input_count"],
        "step_output_count": row["output_count"],
        "started_at": row["started_at"],
        "label": _label(elem),
        "payload": _payload(elem),
        "sample": sample_of(row, elem),
        "outcome": "kept" if accepted is True else "dropped" if accepted is False else "unknown",
        "source": "decisions",
    }


def sample_of(step: Row, elem: dict[str, Any]) -> dict[str, Any] | None:
    """How the step's payload sample was drawn (rule, rate, seed: ``xray.step.sample.*``) and why this
    candidate's payload is in it (``sampled_as``; null: not in the sample). None when the step said nothing
    of its sample (an older SDK, other instrumentation)."""
    text = step.get("sample")
    drawn = json.loads(text) if text else {}
    if not drawn:
        return None
    sampled_as = elem.get(_SAMPLED_AS)
    return {**drawn, "sampled_as": sampled_as if isinstance(sampled_as, str) else None}


def _elem(row: Row) -> dict[str, Any]:
    return json.loads(row["elem"])


def _label(elem: dict[str, Any]) -> str | None:
    label = elem.get("label")
    return label if isinstance(label, str) else None


def _payload(elem: dict[str, Any]) -> dict[str, Any] | None:
    rest = {k: v for k, v in elem.items() if k not in _DECISION_FIELDS}
    return rest or None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
