"""GET /compare: two runs' funnels side by side, aligned by step name, and where they diverge."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..web import json_ok
from .analysis import analyze
from .common import fetch_run, fetch_steps
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
    steps = await fetch_steps(request, stored_id, run["id"])
    result = analyze(run, steps)
    outputs = {step["id"]: step.get("outputs") for step in steps}  # by id: the funnel is in data-flow order
    for entry in result["funnel"]:
        entry["outputs"] = outputs.get(entry["step_id"])
    return result


def compare(base: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Pure: align two /analyze results by (step name, occurrence) and say what changed.

    Steps come in the base run's order, then steps only the other run has, in its order. The
    first divergence is the first aligned step that changed or that one run lacks.
    """
    base_steps, other_steps = _keyed(base["funnel"]), _keyed(other["funnel"])
    keys = list(base_steps) + [k for k in other_steps if k not in base_steps]
    aligned = []
    for key in keys:
        b, o = base_steps.get(key), other_steps.get(key)
        changed = [f for f in _FIELDS if b and o and b.get(f) != o.get(f)] if b and o else ["missing"]
        aligned.append({
            "name": key[0],
            "occurrence": key[1],
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
                    for k in ("initial_candidates", "final_count", "total_cost", "step_count")}
        | {"outputs_changed": base["final_outputs"] != other["final_outputs"],
           "final_outputs": {"base": base["final_outputs"], "other": other["final_outputs"]}},
        "first_divergence": {"name": first["name"], "occurrence": first["occurrence"], "changed": first["changed"]}
        if first else None,
        "steps": aligned,
    }


def _keyed(funnel: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    seen: dict[str, int] = {}
    keyed = {}
    for entry in funnel:
        n = seen[entry["name"]] = seen.get(entry["name"], 0) + 1
        keyed[(entry["name"], n)] = entry
    return keyed


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
