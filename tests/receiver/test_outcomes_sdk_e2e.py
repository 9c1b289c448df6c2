"""Candidate outcomes end to end: the SDK's helpers with no capture argument, the stock OTLP exporters
(HTTP and gRPC), the receiver, and the answers. A product-categorization step of 60,000 categories
with long reasons travels in parts on continuation spans and answers exactly for every one."""

from __future__ import annotations

import time
from typing import Any

import pytest

from helpers import call, get_json
from xray_otel import configure, process_candidates, rank_candidates, start_run
from xray_otel.sdk import build_provider, flush

CATEGORIES = 60_000  # three parts of the SDK's 20,000


def _why(n: int) -> tuple[bool, str | None]:
    if n % 11 == 0:
        return True, None
    return False, f"missing_required_attribute:{('capacity_ml', 'voltage', 'size_eu', 'material')[n % 4]}"


def _pipeline() -> tuple[str, list[str]]:
    categories = [{"id": f"cat-{n:05d}", "path": f"Home > Kitchen > Bottles > {n}"} for n in range(CATEGORIES)]
    with start_run("categorize", tags={"product": "P-bottle"}) as run:
        kept = process_candidates(categories, lambda cat: _why(int(cat["id"][4:])), step_name="attribute_filter",
                                  label_fn=lambda cat: cat["path"])
        best = rank_candidates(kept, lambda cat: -int(cat["id"][4:]), top_k=3, step_name="rank")
    return run.run_id, [c["id"] for c in best]


def _wait(url: str, run_id: str, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        reply = call("GET", f"{url}/analyze/{run_id}")
        if reply.status == 200:
            analysis = reply.json()
            if analysis["run"]["status"] != "RUNNING" and [f["outcomes"] for f in analysis["funnel"]] == [
                    "complete", "complete"]:
                return analysis
        assert time.monotonic() < deadline, f"run {run_id} not whole at the receiver: {reply.body[:500]!r}"
        time.sleep(0.3)


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_every_category_answers_exactly_through_the_stock_exporters(receiver, protocol: str) -> None:
    endpoint = receiver.url if protocol == "http/protobuf" else f"http://127.0.0.1:{receiver.settings.grpc_port}"
    provider = build_provider(f"outcomes-e2e-{protocol}", endpoint=endpoint, protocol=protocol)
    configure(tracer_provider=provider)
    try:
        run_id, best = _pipeline()
        assert flush(timeout=60)
    finally:
        provider.shutdown()
    analysis = _wait(receiver.url, run_id)
    assert [(f["name"], f["input_count"]) for f in analysis["funnel"]] == [
        ("attribute_filter", CATEGORIES), ("rank", len(range(0, CATEGORIES, 11)))]
    assert analysis["summary"]["step_count"] == 2  # the continuation spans are no steps
    dropped = get_json(f"{receiver.url}/runs/{run_id}/candidates/cat-41234")  # in part 2, past any sample
    assert dropped["outcome"] == "dropped" and dropped["left_at"]["reason"] == "missing_required_attribute:size_eu"
    kept = get_json(f"{receiver.url}/runs/{run_id}/candidates/{best[0]}")
    assert kept["outcome"] == "kept" and [e["rank"] for e in kept["path"]] == [None, 1]
    assert kept["path"][0]["label"] == f"Home > Kitchen > Bottles > {int(best[0][4:])}"
    cut = get_json(f"{receiver.url}/runs/{run_id}/candidates/cat-00033")  # kept by the filter, 4th in the ranking
    assert cut["outcome"] == "dropped" and cut["left_at"]["step"] == "rank" and cut["path"][1]["rank"] == 4
    listed = get_json(f"{receiver.url}/runs/{run_id}/candidates?step=attribute_filter&prefix=cat-5999&limit=1000")
    assert [e["candidate_id"] for e in listed] == [f"cat-5999{i}" for i in range(10)]
