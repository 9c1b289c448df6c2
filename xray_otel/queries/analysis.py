"""Pure analysis over fetched rows: step tree order and the decision funnel."""

from __future__ import annotations

from typing import Any, Mapping

from .streams import IdSample, Stream, group


def tree_order(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Steps parent-before-children, siblings in the given (start time) order, each with ``depth``.

    A step whose parent is not among the steps (the run span, or a span not received)
    is a root. Steps caught in a parent cycle are appended at depth 0 rather than lost.
    """
    ids = {s["id"] for s in steps}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for s in steps:
        parent = s["parent_id"] if s["parent_id"] in ids else None
        children.setdefault(parent, []).append(s)
    ordered: list[dict[str, Any]] = []
    seen: set[str] = set()
    stack = [(s, 0) for s in reversed(children.get(None, []))]
    while stack:
        step, depth = stack.pop()
        if step["id"] in seen:
            continue
        seen.add(step["id"])
        ordered.append({**step, "depth": depth})
        stack.extend((child, depth + 1) for child in reversed(children.get(step["id"], [])))
    ordered.extend({**s, "depth": 0} for s in steps if s["id"] not in seen)
    return ordered


def funnel_entry(step: dict[str, Any], outcomes: dict[str, tuple[str, str | None]] | None = None) -> dict[str, Any]:
    """One step's funnel figures: counts, dropped, drop rate, reasons, cost, duration; with ``outcomes`` (per
    step id, what its candidate outcomes are: store/outcomes.state), whether they answer for every candidate."""
    n_in, n_out = step.get("input_count"), step.get("output_count")
    dropped = n_in - n_out if n_in is not None and n_out is not None else None
    rejections = step.get("rejections")
    entry = {
        "step_id": step["id"],
        "parent_id": step["parent_id"],
        "depth": step["depth"],
        "name": step["name"],
        "type": step["type"],
        "status": step["status"],
        "input_count": n_in,
        "output_count": n_out,
        "dropped": dropped,
        "drop_rate": round(dropped / n_in, 6) if dropped is not None and n_in else None,
        "rejections": rejections if isinstance(rejections, dict) else {},
        "reasoning": step.get("reasoning"),
        "cost": step.get("cost"),
        "cost_source": step.get("cost_source"),
        "duration_ms": step.get("duration_ms"),
        "error": step.get("error"),
        "derived": step.get("derived"),  # a figure the receiver worked out rather than was sent: how
    }
    if step.get("wrapped_by"):
        entry["wrapped_by"] = step["wrapped_by"]
    if outcomes is not None:
        # "complete": every candidate's fate at this step is known; "incomplete": some is not (why says why),
        # and a candidate not found here is unknown; "none": the step sent no outcomes.
        entry["outcomes"], entry["outcomes_why"] = outcomes.get(step["id"], (OUTCOMES_NONE, None))
    return entry


OUTCOMES_NONE = "none"


def fold_wrappers(ordered_steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tree order (tree_order's output) without the steps that only wrap a step of the same name that has the
    figures: ``with step("filter_by_price"): process_candidates(..., step_name="filter_by_price")`` makes two
    steps, the wrapper without counts and the filter with them, one stage of the funnel. The filter takes the
    wrapper's place (parent and depth), and names it in ``wrapped_by``.

    A wrapper has no figures (counts, rejections), no cost and no error, and holds exactly one step: its only
    child of that name with figures, or, where nesting is not known (the original SDK's /ingest events carry
    no parent), its only same-named sibling with figures that ran within its time and it has no child."""
    by_id = {s["id"]: s for s in ordered_steps}
    children: dict[Any, list[dict[str, Any]]] = {}
    siblings: dict[Any, list[dict[str, Any]]] = {}
    for s in ordered_steps:
        parent = s["parent_id"] if s["parent_id"] in by_id else None
        children.setdefault(parent, []).append(s)
        siblings.setdefault((parent, s["name"]), []).append(s)
    folded: dict[Any, dict[str, Any]] = {}  # wrapper id -> the step it wraps
    for w in ordered_steps:
        if not _bare(w):
            continue
        kids = children.get(w["id"], [])
        if len(kids) == 1 and kids[0]["name"] == w["name"] and _has_figures(kids[0]):
            folded[w["id"]] = kids[0]
        elif not kids:
            parent = w["parent_id"] if w["parent_id"] in by_id else None
            within = [s for s in siblings.get((parent, w["name"]), [])
                      if s is not w and _has_figures(s) and _within(s, w) and not children.get(s["id"])]
            if len(within) == 1 and all(f["id"] != within[0]["id"] for f in folded.values()):
                folded[w["id"]] = within[0]
    if not folded:
        return ordered_steps
    taken = {f["id"]: by_id[w_id] for w_id, f in folded.items()}
    out = []
    for s in ordered_steps:
        if s["id"] in folded:
            continue
        w = taken.get(s["id"])
        out.append(s if w is None else {**s, "parent_id": w["parent_id"], "depth": w.get("depth", s.get("depth")),
                                        "wrapped_by": w["id"], "funnel": s.get("funnel") or w.get("funnel")})
    return out


def _bare(step: dict[str, Any]) -> bool:
    return (not _has_figures(step) and not step.get("cost") and step.get("error") is None
            and step.get("status") != "FAILED")


def _has_figures(step: dict[str, Any]) -> bool:
    return step.get("input_count") is not None or step.get("output_count") is not None or bool(step.get("rejections"))


def _within(inner: dict[str, Any], outer: dict[str, Any]) -> bool:
    times = (inner.get("started_at"), inner.get("completed_at"), outer.get("started_at"), outer.get("completed_at"))
    if any(t is None for t in times):
        return False
    return times[2] <= times[0] and times[1] <= times[3]


# Steps that can wrap a retriever (LangChain's ContextualCompressionRetriever around a base retriever,
# a reranker around a search): their input is what the wrapped ones returned.
WRAPPER_TYPES = frozenset({"retrieval", "rank"})
REJECTED_BY_WRAPPER = "below_top_k"
DERIVED_WRAPPER_INPUT = "input_count from the retrieval steps it wraps"


def data_flow(ordered_steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tree order (tree_order's output), but a retrieval or rank step that wraps retrieval steps with counts
    comes after them, as its input is their output; its input count, when it sent none, is theirs (and
    what it did not pass on is ``below_top_k``), marked ``derived``; ``fed_by`` names those steps (streams.py)."""
    children: dict[Any, list[dict[str, Any]]] = {}
    ids = {s["id"] for s in ordered_steps}
    for s in ordered_steps:
        children.setdefault(s["parent_id"] if s["parent_id"] in ids else None, []).append(s)
    flow: list[dict[str, Any]] = []
    stack: list[tuple[dict[str, Any], bool]] = [(s, False) for s in reversed(children.get(None, []))]
    seen: set[Any] = set()
    while stack:
        step, expanded = stack.pop()
        if expanded:
            flow.append(step)
            continue
        if step["id"] in seen:
            continue
        seen.add(step["id"])
        kids = children.get(step["id"], [])
        wrapped = [k for k in kids if k.get("type") == "retrieval" and k.get("output_count") is not None]
        if step.get("type") in WRAPPER_TYPES and wrapped and step.get("output_count") is not None:
            step = {**_fed_by(step, wrapped), "fed_by": [k["id"] for k in wrapped]}
            stack.append((step, True))
            stack.extend((k, False) for k in reversed(kids))
        else:
            flow.append(step)
            stack.extend((k, False) for k in reversed(kids))
    flow.extend(s for s in ordered_steps if s["id"] not in seen)
    return flow


def _fed_by(step: dict[str, Any], wrapped: list[dict[str, Any]]) -> dict[str, Any]:
    if step.get("input_count") is not None:
        return step
    n_in = sum(k["output_count"] for k in wrapped)
    derived = {**step, "input_count": n_in, "derived": DERIVED_WRAPPER_INPUT}
    if n_in > step["output_count"] and not step.get("rejections"):
        derived["rejections"] = {REJECTED_BY_WRAPPER: n_in - step["output_count"]}
    return derived


def analyze(run: dict[str, Any], ordered_steps: list[dict[str, Any]],
            outcomes: dict[str, tuple[str, str | None]] | None = None,
            ids: Mapping[str, IdSample] | None = None) -> dict[str, Any]:
    """The decision funnel of a run, in data-flow order (data_flow), a same-named wrapper folded into the step
    it wraps (fold_wrappers): per-step figures, one funnel per stream of candidates (streams.py; ``ids``: the
    steps' outcome samples it compares), and run totals. ``outcomes``: as funnel_entry's.

    The summary's initial and final counts are its main funnel's (the one that starts with the most
    candidates), never a mix of two streams; ``funnel_count`` says how many there are."""
    ordered_steps = data_flow(fold_wrappers(ordered_steps))
    funnel = [funnel_entry(s, outcomes) for s in ordered_steps]
    streams, placed = group(ordered_steps, ids)
    for entry in funnel:
        entry["funnel"], entry["funnel_link"] = placed.get(entry["step_id"], (None, None))
    by_id = {entry["step_id"]: entry for entry in funnel}
    members: dict[str, list[dict[str, Any]]] = {}
    for entry in funnel:
        if entry["funnel"] is not None:
            members.setdefault(entry["funnel"], []).append(entry)
    funnels = [_stream_figures(st, by_id, members[st.name]) for st in streams]
    main = max(funnels, key=lambda f: f["initial_candidates"] or 0, default=None)  # the first of equals
    drops = [f for f in funnel if (f["dropped"] or 0) > 0]  # a step that adds candidates drops none
    biggest = max(drops, key=lambda f: f["dropped"], default=None)
    return {
        "run": run,
        "funnels": funnels,
        "funnel": funnel,
        "summary": {
            "initial_candidates": main["initial_candidates"] if main else None,
            "final_count": main["final_count"] if main else None,
            "biggest_drop": _drop(biggest),
            "total_cost": run.get("total_cost"),
            "step_count": len(funnel),
            "funnel_count": len(funnels),
            "main_funnel": main["name"] if main else None,
        },
        "final_outputs": run.get("outputs"),
    }


def _stream_figures(stream: Stream, by_id: dict[str, dict[str, Any]], entries: list[dict[str, Any]]) -> dict[str, Any]:
    """One funnel of /analyze: its steps (``entries``, in the run's funnel order), first and last counts (in
    time order, a step without a start time last), and its biggest drop."""
    first, last = by_id[stream.steps[0]["id"]], by_id[stream.steps[-1]["id"]]
    drops = [f for f in entries if (f["dropped"] or 0) > 0]
    return {
        "name": stream.name,
        "named": stream.named,
        "steps": [f["step_id"] for f in entries],
        "initial_candidates": first["input_count"] if first["input_count"] is not None else first["output_count"],
        "final_count": last["output_count"] if last["output_count"] is not None else last["input_count"],
        "biggest_drop": _drop(max(drops, key=lambda f: f["dropped"], default=None)),
    }


def _drop(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {"step": entry["name"], "step_id": entry["step_id"], "dropped": entry["dropped"],
            "drop_rate": entry["drop_rate"]}
