"""GET /compare: two runs' funnels side by side, aligned per stream (funnel) and step name, and where they
diverge."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..web import json_ok
from .common import fetch_run, json_value, project_steps, reads
from .funnel import run_analysis
from .params import Param, parse

PARAMS = (
    Param("base", "string", "run id of the reference run (e.g. yesterday's good one)", required=True),
    Param("other", "string", "run id of the run to compare with it", required=True),
)
# Compared per aligned step; a difference in any of these makes the step "changed".
_FIELDS = ("status", "input_count", "output_count", "drop_rate", "rejections", "outputs", "reasoning", "error")


async def compare_runs(request: web.Request) -> web.Response:
    p = parse(request.query, PARAMS)
    base = await _analysis(request, p["base"])
    other = await _analysis(request, p["other"])
    return json_ok(compare(base, other))


async def _analysis(request: web.Request, text: str) -> dict[str, Any]:
    run, stored_id = await fetch_run(request, text)  # first: 404 before anything of the run is read
    rows = project_steps(request, await reads(request).run_steps(stored_id))
    result = await run_analysis(request, run, stored_id, rows)
    outputs = {row["span_id"]: json_value(row["outputs"]) for row in rows}  # by id: the funnel is in data-flow order
    for entry in result["funnel"]:
        entry["outputs"] = outputs.get(entry["step_id"])
    return result


def compare(base: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Pure: align two /analyze results per funnel, then by (step name, occurrence) within it, and say what
    changed.

    Funnels pair by name, then a funnel left on each side with the one it shares most step names with
    (an inferred name is the first step's, which one run may lack); steps in no funnel align among
    themselves. Steps come in the base run's order, then steps only the other run has, in its order. The
    first divergence is the first aligned step that changed or that one run lacks.
    """
    pairs = _pair_funnels(base, other)
    aligned_name = {("base", b["name"]): name for name, b, _ in pairs if b} | {
        ("other", o["name"]): name for name, _, o in pairs if o}
    base_steps = _keyed(base["funnel"], lambda e: aligned_name.get(("base", e.get("funnel"))))
    other_steps = _keyed(other["funnel"], lambda e: aligned_name.get(("other", e.get("funnel"))))
    keys = list(base_steps) + [k for k in other_steps if k not in base_steps]
    aligned = []
    for key in keys:
        b, o = base_steps.get(key), other_steps.get(key)
        changed = [f for f in _FIELDS if b and o and b.get(f) != o.get(f)] if b and o else ["missing"]
        aligned.append({
            "funnel": key[0],
            "name": key[1],
            "occurrence": key[2],
            "base": _side(b),
            "other": _side(o),
            "changed": changed,
            "rejections_delta": _delta(b, o),
        })
    first = next((a for a in aligned if a["changed"]), None)
    bs, os_ = base["summary"], other["summary"]
    return {
        "base": base["run"],
        "other": other["run"],
        "summary": {k: {"base": bs[k], "other": os_[k]}
                    for k in ("initial_candidates", "final_count", "total_cost", "step_count", "funnel_count")}
        | {"outputs_changed": base["final_outputs"] != other["final_outputs"],
           "final_outputs": {"base": base["final_outputs"], "other": other["final_outputs"]}},
        "first_divergence": {"funnel": first["funnel"], "name": first["name"], "occurrence": first["occurrence"],
                             "changed": first["changed"]} if first else None,
        "funnels": [{"name": name, "base": _funnel_side(b), "other": _funnel_side(o)} for name, b, o in pairs],
        "steps": aligned,
    }


_Funnel = dict[str, Any]


def _pair_funnels(base: dict[str, Any], other: dict[str, Any]) -> list[tuple[str, _Funnel | None, _Funnel | None]]:
    """(aligned name, base funnel, other funnel) in base order, then the other's funnels left alone."""
    step_names = {side: {e["step_id"]: e["name"] for e in result["funnel"]} for side, result in
                  (("base", base), ("other", other))}
    left = {f["name"]: f for f in other["funnels"]}
    pairs: list[tuple[str, _Funnel | None, _Funnel | None]] = [
        (b["name"], b, left.pop(b["name"], None)) for b in base["funnels"]]
    for n, (name, b, o) in enumerate(pairs):
        if o is not None or not left:
            continue
        names = {step_names["base"][s] for s in b["steps"]}  # type: ignore[index]
        shared = {key: len(names & {step_names["other"][s] for s in f["steps"]}) for key, f in left.items()}
        best = max(shared, key=lambda key: shared[key])
        if shared[best]:
            pairs[n] = (name, b, left.pop(best))
    return pairs + [(f["name"], None, f) for f in left.values()]


def _keyed(funnel: list[dict[str, Any]], stream: Any) -> dict[tuple[str | None, str, int], dict[str, Any]]:
    """Entries by (aligned funnel name, step name, occurrence of that name in that funnel)."""
    seen: dict[tuple[str | None, str], int] = {}
    keyed = {}
    for entry in funnel:
        group = (stream(entry), entry["name"])
        n = seen[group] = seen.get(group, 0) + 1
        keyed[group + (n,)] = entry
    return keyed


def _funnel_side(funnel: _Funnel | None) -> _Funnel | None:
    if funnel is None:
        return None
    return {k: funnel[k] for k in ("name", "named", "initial_candidates", "final_count", "biggest_drop")} | {
        "step_count": len(funnel["steps"])}


def _side(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {k: entry.get(k) for k in ("step_id", "type", "cost", "duration_ms", "dropped") + _FIELDS}


def _delta(b: dict[str, Any] | None, o: dict[str, Any] | None) -> dict[str, float]:
    """Per rejection reason, other's count minus base's (numeric counts only)."""
    rb, ro = (b or {}).get("rejections") or {}, (o or {}).get("rejections") or {}
    delta = {}
    for reason in list(rb) + [r for r in ro if r not in rb]:
        vb, vo = rb.get(reason, 0), ro.get(reason, 0)
        if _number(vb) and _number(vo) and vo != vb:
            delta[reason] = vo - vb
    return delta


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
