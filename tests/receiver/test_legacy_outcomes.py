"""The original X-Ray SDK on /ingest (issue 18 item 8): its funnel figures, its survivors as kept outcomes,
and the same-named wrapper step, with events shaped exactly as that SDK sends them
(../shared/reference/original-sdk-events.md)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from helpers import call, get_json
from xray_otel.mapping.legacy import SURVIVORS_ONLY, map_events

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
N = 5000


def at(ms: int) -> str:
    """A time as that SDK writes it: ISO 8601 with +00:00."""
    return (T0 + timedelta(milliseconds=ms)).isoformat()


def products(n: int = N) -> list[dict[str, Any]]:
    return [{"id": f"p{i:05d}", "title": f"Product {i}", "price": 5 + (i * 37) % 400} for i in range(n)]


def sdk_run(max_price: float, *, wrapped: bool = True, objects: bool = False) -> tuple[str, list[dict[str, Any]]]:
    """What `with xray.run("competitor_selection")` around a search, then (when ``wrapped``)
    `with step("filter_by_price", "filter"): process_candidates(items, fn, step_name="filter_by_price")`, posts:
    the steps' events in the order they finish, then the run's. ``objects``: the candidates were dataclasses,
    so `survivors` is one string."""
    run_id = str(uuid.uuid4())
    items = products()
    survivors = [p for p in items if p["price"] <= max_price]
    histogram = {"price_too_high": N - len(survivors)}
    search = {"id": str(uuid.uuid4()), "run_id": run_id, "name": "search", "type": "retrieval", "reasoning": None,
              "inputs": {"query": "phone case"}, "started_at": at(1), "completed_at": at(20),
              "outputs": {"count": N}}  # the caller set it on the yielded dict
    filtered = {"id": str(uuid.uuid4()), "run_id": run_id, "name": "filter_by_price", "type": "filter",
                "inputs": {"candidate_count": N, "sample_input": items[0]},
                "outputs": {"survivor_count": len(survivors),
                            "survivors": str(survivors) if objects else survivors},
                "metadata": {"rejection_histogram": histogram, "drop_rate": round(1 - len(survivors) / N, 4),
                             "total_count": N},
                "reasoning": f"Filtered {N} candidates, {len(survivors)} survived. Rejection reasons: {histogram}",
                "started_at": at(22), "completed_at": at(40)}
    wrapper = {"id": str(uuid.uuid4()), "run_id": run_id, "name": "filter_by_price", "type": "filter",
               "reasoning": None, "inputs": None, "started_at": at(21), "completed_at": at(41)}
    run = {"id": run_id, "name": "legacy_outcome_selection", "tags": {"product": "P1"}, "status": "COMPLETED",
           "started_at": at(0), "completed_at": at(50), "steps": []}
    events = [{"type": "step_complete", "data": search}, {"type": "step_complete", "data": filtered}]
    if wrapped:
        events.append({"type": "step_complete", "data": wrapper})
    events.append({"type": "run_complete", "data": run})
    return run_id, events


def post(url: str, events: list[dict[str, Any]]) -> None:
    reply = call("POST", url + "/ingest", json.dumps({"events": events}).encode(), {"Content-Type": "application/json"})
    assert reply.status == 200, reply.body[:300]


# --- the figures ------------------------------------------------------------------------------------


def test_process_candidates_figures_fill_the_counts() -> None:
    _, events = sdk_run(30)
    batch, _ = map_events({"events": events})
    by_name = {}
    for step in batch.steps:
        by_name.setdefault(step.name, []).append(step)
    [search] = by_name["search"]
    filtered, wrapper = by_name["filter_by_price"]
    assert (search.input_count, search.output_count) == (None, N)  # a retrieval's outputs.count
    survivors = [p for p in products() if p["price"] <= 30]
    assert (filtered.input_count, filtered.output_count) == (N, len(survivors))
    assert json.loads(filtered.rejections) == {"price_too_high": N - len(survivors)}
    assert (wrapper.input_count, wrapper.output_count, wrapper.rejections) == (None, None, None)


@pytest.mark.parametrize(("metadata", "inputs", "outputs", "step_type", "expected"), [
    ({"input_count": 7, "total_count": 9}, {"candidate_count": 11}, {}, "filter", (7, None)),
    ({"total_count": 9}, {"candidate_count": 11}, {}, "filter", (9, None)),
    ({}, {"candidate_count": 11}, {"survivor_count": 3, "survivors": [{"id": "a"}]}, "filter", (11, 3)),
    ({"output_count": 2, "survivor_count": 4}, {}, {"survivor_count": 3}, "filter", (None, 2)),
    ({"survivor_count": 4}, {}, {"survivor_count": 3}, "filter", (None, 4)),
    ({}, {}, {"survivors": [{"id": "a"}, {"id": "b"}]}, "filter", (None, 2)),
    ({}, {}, {"survivors": "[Product(id='a')]"}, "filter", (None, None)),
    ({}, {}, {"count": 12, "items": [1, 2]}, "retrieval", (None, 12)),
    ({}, {}, {"items": [1, 2]}, "retrieval", (None, 2)),
    ({}, {}, {"count": 12, "items": [1, 2]}, "llm", (None, None)),  # outputs.count means a count only in a retrieval
    ({"total_count": "5000", "drop_rate": 0.5}, {"candidate_count": -1}, {"survivor_count": True}, "filter",
     (None, None)),  # not counts: left unread, never a 400
])
def test_figure_precedence(metadata, inputs, outputs, step_type, expected) -> None:
    event = {"type": "step_complete", "data": {"id": str(uuid.uuid4()), "run_id": str(uuid.uuid4()), "name": "s",
                                               "type": step_type, "started_at": at(0), "metadata": metadata,
                                               "inputs": inputs, "outputs": outputs}}
    [step] = map_events({"events": [event]})[0].steps
    assert (step.input_count, step.output_count) == expected


def test_survivors_with_ids_become_kept_outcomes_and_nothing_else_does() -> None:
    _, events = sdk_run(30)
    [part] = map_events({"events": events})[0].outcomes
    survivors = [p["id"] for p in products() if p["price"] <= 30]
    assert (part.ids, set(part.codes), part.total, part.incomplete) == (survivors, {0}, N, SURVIVORS_ONLY)
    _, events = sdk_run(30, objects=True)
    assert map_events({"events": events})[0].outcomes == []
    _, events = sdk_run(10_000)  # everything survived: the survivors are every outcome
    [part] = map_events({"events": events})[0].outcomes
    assert (len(part.ids), part.total, part.incomplete) == (N, N, None)


# --- through /ingest: the funnel, compare and candidates ---------------------------------------------


def test_the_wrapper_is_no_funnel_row_of_its_own(receiver_url: str) -> None:
    run_id, events = sdk_run(30)
    post(receiver_url, events)
    steps = get_json(f"{receiver_url}/runs/{run_id}/steps")
    assert [s["name"] for s in steps] == ["search", "filter_by_price", "filter_by_price"]  # nothing lost
    analysis = get_json(f"{receiver_url}/analyze/{run_id}")
    survivors = sum(p["price"] <= 30 for p in products())
    funnel = [(f["name"], f["input_count"], f["output_count"]) for f in analysis["funnel"]]
    assert funnel == [("search", None, N), ("filter_by_price", N, survivors)]
    wrapper = next(s for s in steps if s["name"] == "filter_by_price" and s["input_count"] is None)
    assert analysis["funnel"][1]["wrapped_by"] == wrapper["id"]
    assert analysis["funnel"][1]["outcomes"] == "incomplete"  # survivors only
    summary = analysis["summary"]
    assert (summary["initial_candidates"], summary["final_count"], summary["step_count"]) == (N, survivors, 2)
    assert summary["biggest_drop"]["step"] == "filter_by_price" and summary["biggest_drop"]["dropped"] == N - survivors


def test_compare_aligns_the_steps_with_figures(receiver_url: str) -> None:
    strict, events = sdk_run(30)
    post(receiver_url, events)
    lenient, events = sdk_run(60, wrapped=False)  # the same program without the wrapper
    post(receiver_url, events)
    diff = get_json(f"{receiver_url}/compare?base={strict}&other={lenient}")
    assert [(s["name"], s["occurrence"]) for s in diff["steps"]] == [("search", 1), ("filter_by_price", 1)]
    assert "missing" not in diff["steps"][1]["changed"] and "output_count" in diff["steps"][1]["changed"]
    assert diff["first_divergence"]["name"] == "filter_by_price"
    assert diff["summary"]["step_count"] == {"base": 2, "other": 2}


def test_a_survivor_is_exact_and_any_other_candidate_unknown(receiver_url: str) -> None:
    run_id, events = sdk_run(30)
    post(receiver_url, events)
    survivor = next(p["id"] for p in products() if p["price"] <= 30)
    dropped = next(p["id"] for p in products() if p["price"] > 30)
    path = get_json(f"{receiver_url}/runs/{run_id}/candidates/{survivor}")
    assert path["outcome"] == "kept" and [(e["step"], e["source"]) for e in path["path"]] == [
        ("filter_by_price", "outcomes")]
    path = get_json(f"{receiver_url}/runs/{run_id}/candidates/{dropped}")
    assert path["outcome"] == "unknown" and "survivors only" in path["why"]  # never "kept"
    listed = get_json(f"{receiver_url}/runs/{run_id}/candidates?limit=1000")
    assert {e["outcome"] for e in listed} == {"kept"} and len(listed) == sum(p["price"] <= 30 for p in products())


def test_survivors_sent_as_one_string_still_give_the_counts(receiver_url: str) -> None:
    run_id, events = sdk_run(30, objects=True)
    post(receiver_url, events)
    funnel = get_json(f"{receiver_url}/analyze/{run_id}")["funnel"]
    assert [(f["name"], f["output_count"], f["outcomes"]) for f in funnel][1] == (
        "filter_by_price", sum(p["price"] <= 30 for p in products()), "none")
    assert call("GET", f"{receiver_url}/runs/{run_id}/candidates/p00001").status == 404
