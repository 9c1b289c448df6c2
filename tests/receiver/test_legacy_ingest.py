"""POST /ingest with the original X-Ray SDK's events: same tables, same guarantees."""

from __future__ import annotations

import json
import uuid

from helpers import call, get_json


def post_events(url: str, events: list) -> object:
    return call("POST", url + "/ingest", json.dumps({"events": events}).encode(), {"Content-Type": "application/json"})


def _events(run_id: str) -> tuple[dict, list[dict]]:
    run = {"type": "run_complete", "data": {
        "id": run_id, "name": "competitor_selection", "tags": {"product_id": "P123"},
        "started_at": "2026-01-02T10:00:00Z", "completed_at": "2026-01-02T10:00:05Z"}}
    steps = [
        {"type": "step_complete", "data": {
            "id": str(uuid.uuid4()), "run_id": run_id, "name": "filter_by_price", "type": "filter",
            "inputs": {"max_price": 100}, "outputs": {"kept": 30}, "cost": 0.0,
            "metadata": {"input_count": 5000, "output_count": 30, "rejection_reasons": {"price_too_high": 4970}},
            "reasoning": "price cap", "started_at": "2026-01-02T10:00:01Z", "completed_at": "2026-01-02T10:00:02Z"}},
        {"type": "step_failed", "data": {
            "id": str(uuid.uuid4()), "run_id": run_id, "name": "rank", "type": "llm", "cost": 0.25,
            "error": "rate limited", "started_at": "2026-01-02T10:00:03"}},
    ]
    return run, steps


def test_legacy_events_steps_before_run(receiver_url: str) -> None:
    run_id = str(uuid.uuid4())
    run, steps = _events(run_id)
    reply = post_events(receiver_url, steps)
    assert reply.status == 200 and reply.json() == {"status": "ok", "processed": 2}
    assert get_json(f"{receiver_url}/runs/{run_id}")["status"] == "RUNNING"
    assert post_events(receiver_url, [run]).status == 200
    assert post_events(receiver_url, [run, *steps]).status == 200  # re-sent: idempotent

    analysis = get_json(f"{receiver_url}/analyze/{run_id}")
    assert analysis["run"]["name"] == "competitor_selection"
    assert analysis["run"]["status"] == "COMPLETED" and analysis["run"]["step_count"] == 2
    assert analysis["run"]["total_cost"] == 0.25 and analysis["run"]["tags"] == {"product_id": "P123"}
    price, rank = analysis["funnel"]
    assert (price["input_count"], price["output_count"], price["drop_rate"]) == (5000, 30, 0.994)
    assert price["rejections"] == {"price_too_high": 4970}
    assert (rank["status"], rank["error"]) == ("FAILED", "rate limited")
    assert (price["cost_source"], rank["cost_source"]) == ("explicit", "explicit")


def test_bad_event_is_400_and_nothing_applied(receiver_url: str) -> None:
    run_id = str(uuid.uuid4())
    run, steps = _events(run_id)
    bad = {"type": "step_complete", "data": {"id": "nope", "run_id": run_id, "name": "x",
                                              "started_at": "2026-01-02T10:00:00Z"}}
    reply = post_events(receiver_url, [run, steps[0], bad])
    assert reply.status == 400
    assert "events[2]" in reply.json()["error"]["message"] and '"id" must be a UUID' in reply.json()["error"]["message"]
    assert call("GET", f"{receiver_url}/runs/{run_id}").status == 404
    for body in (b"not json", b"{}", b'{"events": [{"type": "mystery", "data": {}}]}'):
        assert call("POST", receiver_url + "/ingest", body, {"Content-Type": "application/json"}).status == 400


def test_run_events_alone_are_stored(receiver_url: str) -> None:
    run_id = str(uuid.uuid4())
    run, _ = _events(run_id)
    assert post_events(receiver_url, [run]).json() == {"status": "ok", "processed": 1}
    stored = get_json(f"{receiver_url}/runs/{run_id}")
    assert (stored["name"], stored["status"], stored["step_count"]) == ("competitor_selection", "COMPLETED", 0)


def test_huge_names_are_capped_not_lost(receiver_url: str) -> None:
    run_id = str(uuid.uuid4())
    run, steps = _events(run_id)
    run["data"]["name"] = "n" * 20_000
    steps[0]["data"]["type"] = "t" * 20_000
    assert post_events(receiver_url, [run, steps[0]]).json() == {"status": "ok", "processed": 2}
    stored = get_json(f"{receiver_url}/runs/{run_id}")
    assert stored["name"].startswith("n" * 512) and stored["step_count"] == 1
