"""GET /runs/{id}/steps pages a large run (issue 16 §4): tree order across pages, each step once,
a streamed body, cursors that are checked."""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest

from helpers import call, export_request, get_json, make_span, new_ids, post_otlp


@pytest.fixture(scope="module")
def wide_run(receiver) -> tuple[str, list]:
    """2,500 steps: 50 groups of 49 children each, children arriving before their parents' siblings."""
    trace_id, base = new_ids()
    t0 = time.time_ns()
    spans = [make_span(trace_id, base, "wide", attrs={"xray.kind": "run"}, start=t0, duration_ns=10**9)]
    for group in range(50):
        parent = base + 1 + group * 50
        spans.append(make_span(trace_id, parent, f"group_{group:02d}", parent=base, start=t0 + group * 1000))
        spans += [make_span(trace_id, parent + 1 + i, f"item_{group:02d}_{i:02d}", parent=parent,
                            start=t0 + 500 + i, attrs={"xray.step.inputs": {"i": i}}) for i in range(49)]
    for chunk in range(0, len(spans), 500):
        assert post_otlp(receiver.url, export_request(spans[chunk:chunk + 500][::-1])).status == 200
    return str(uuid.UUID(bytes=trace_id)), spans


def _pages(url: str, limit: int | None) -> tuple[list[dict], list]:
    steps, replies = [], []
    query = f"?limit={limit}" if limit else ""
    while True:
        reply = call("GET", url + query)
        assert reply.status == 200, reply.body[:300]
        replies.append(reply)
        steps += reply.json()
        cursor = reply.headers.get("X-Next-Cursor")
        if not cursor:
            return steps, replies
        assert f"cursor={cursor}" in reply.headers["Link"]
        query = f"?limit={limit}&cursor={cursor}" if limit else f"?cursor={cursor}"


def test_pages_walk_the_whole_tree_in_order(receiver, wide_run) -> None:
    run_id, spans = wide_run
    url = f"{receiver.url}/runs/{run_id}/steps"
    steps, replies = _pages(url, 300)
    assert len(replies) == 9 and all(len(r.json()) == 300 for r in replies[:-1])
    assert len(steps) == 2500 and len({s["id"] for s in steps}) == 2500
    # Tree order: each group, then its 49 items, groups by start time.
    expected = []
    for group in range(50):
        expected.append((f"group_{group:02d}", 0))
        expected += [(f"item_{group:02d}_{i:02d}", 1) for i in range(49)]
    assert [(s["name"], s["depth"]) for s in steps] == expected
    assert steps[1]["inputs"] == {"i": 0} and steps[1]["run_id"] == run_id
    # The funnel orders steps the same way.
    funnel = get_json(f"{receiver.url}/analyze/{run_id}")["funnel"]
    assert [f["step_id"] for f in funnel] == [s["id"] for s in steps]
    # Streamed: no Content-Length, the body arrives in chunks.
    assert replies[0].headers.get("Transfer-Encoding") == "chunked"


def test_the_default_page_is_a_thousand_steps(receiver, wide_run) -> None:
    run_id, _ = wide_run
    steps, replies = _pages(f"{receiver.url}/runs/{run_id}/steps", None)
    assert [len(r.json()) for r in replies] == [1000, 1000, 500] and len(steps) == 2500


def test_a_small_run_is_one_page_without_a_cursor(receiver) -> None:
    trace_id, base = new_ids()
    assert post_otlp(receiver.url, export_request([
        make_span(trace_id, base, "small", attrs={"xray.kind": "run"}),
        make_span(trace_id, base + 1, "only", parent=base)])).status == 200
    reply = call("GET", f"{receiver.url}/runs/{uuid.UUID(bytes=trace_id)}/steps")
    assert reply.status == 200 and [s["name"] for s in reply.json()] == ["only"]
    assert "X-Next-Cursor" not in reply.headers and "Link" not in reply.headers


def _cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    _cursor(["tree", [1, "0000000000000bad"]]),  # a step this run does not have
    _cursor(["tree", [1]]),
    _cursor(["-started_at", ["2026-01-01T00:00:00+00:00", str(uuid.uuid4())]]),  # another list's cursor
    _cursor(["tree", [[[[1]]], "x"]]),
    "not-base64!",
])
def test_a_cursor_the_server_did_not_issue_is_a_400(receiver, wide_run, cursor: str) -> None:
    run_id, _ = wide_run
    reply = call("GET", f"{receiver.url}/runs/{run_id}/steps?cursor={cursor}")
    assert reply.status == 400 and "cursor" in reply.json()["error"]["message"]


def test_a_cursor_survives_steps_arriving_between_pages(receiver) -> None:
    """A step that arrives between two pages and sorts before the cursor moves it: the next page starts
    after the step the cursor named, wherever it is now, and repeats nothing."""
    trace_id, base = new_ids()
    t0 = time.time_ns()
    spans = [make_span(trace_id, base, "growing", attrs={"xray.kind": "run"}, start=t0)]
    spans += [make_span(trace_id, base + i, f"s{i:02d}", parent=base, start=t0 + i * 1000) for i in range(1, 21)]
    assert post_otlp(receiver.url, export_request(spans)).status == 200
    url = f"{receiver.url}/runs/{uuid.UUID(bytes=trace_id)}/steps"
    first = call("GET", url + "?limit=10")
    assert [s["name"] for s in first.json()] == [f"s{i:02d}" for i in range(1, 11)]
    late = make_span(trace_id, base + 99, "s00", parent=base, start=t0 + 1)
    assert post_otlp(receiver.url, export_request([late])).status == 200
    rest = call("GET", url + f"?limit=10&cursor={first.headers['X-Next-Cursor']}").json()
    assert [s["name"] for s in rest] == [f"s{i:02d}" for i in range(11, 21)]
