"""Candidate outcomes end to end: the SDK's helpers with no capture argument, the stock OTLP exporters
(HTTP and gRPC), the receiver, and the answers. A product-categorization step of 60,000 categories
with long reasons travels in parts on continuation spans and answers exactly for every one."""

from __future__ import annotations

import time
import uuid
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
    # The filter's sample holds 100 of its 5,455 survivors, drawn over the input, each with its label.
    kept_rows: list[dict[str, Any]] = []
    listing = f"{receiver.url}/runs/{run_id}/candidates?step=attribute_filter&accepted=true&limit=1000"
    page = listing
    while page:
        reply = call("GET", page)
        kept_rows += reply.json()
        cursor = reply.headers.get("X-Next-Cursor")
        page = cursor and f"{listing}&cursor={cursor}"
    labelled = [e for e in kept_rows if e["label"] is not None]
    assert len(kept_rows) == len(range(0, CATEGORIES, 11)) and len(labelled) == 100
    assert all(e["label"] == f"Home > Kitchen > Bottles > {int(e['candidate_id'][4:])}" for e in labelled)
    assert int(labelled[-1]["candidate_id"][4:]) > CATEGORIES // 2  # spread over the input, not the first 100
    cut = get_json(f"{receiver.url}/runs/{run_id}/candidates/cat-00033")  # kept by the filter, 4th in the ranking
    assert cut["outcome"] == "dropped" and cut["left_at"]["step"] == "rank" and cut["path"][1]["rank"] == 4
    listed = get_json(f"{receiver.url}/runs/{run_id}/candidates?step=attribute_filter&prefix=cat-5999&limit=1000")
    assert [e["candidate_id"] for e in listed] == [f"cat-5999{i}" for i in range(10)]


def test_a_watched_candidate_payload_and_the_sample_rule_are_served(receiver, monkeypatch) -> None:
    """5,000 products, a price filter that reports the price it compared: the watched one, dropped as the
    700th ``price_too_high`` (far past any first-come sample), is served with its payload and why it is there."""
    from xray_otel.sdk import sampling

    monkeypatch.setattr(sampling, "_env_watched", None)
    monkeypatch.setenv(sampling.WATCH_IDS_ENV, "B0PHONECASE")
    products = [{"id": f"P{n:05d}", "price": 10 + n % 40} for n in range(5_000)]
    products[2_000] = {"id": "B0PHONECASE", "price": 45}
    provider = build_provider("sample-e2e", endpoint=receiver.url)
    configure(tracer_provider=provider)  # reads XRAY_WATCH_IDS
    name = f"competitor_selection_{uuid.uuid4().hex[:8]}"  # the session's database holds other runs of the name
    try:
        with start_run(name) as run:
            process_candidates(products, lambda p: (p["price"] <= 30, "price_too_high", p["price"]),
                               step_name="filter_by_price", watch=["P04975"], funnel="products")
        assert flush(timeout=60)
    finally:
        provider.shutdown()
    _wait_funnel(receiver.url, run.run_id, 1)
    got = get_json(f"{receiver.url}/runs/{run.run_id}/candidates/B0PHONECASE")
    (entry,) = got["path"]
    assert (got["outcome"], entry["reason"]) == ("dropped", "price_too_high")
    assert entry["payload"] == {"value": 45, "sampled_as": "watched"}
    assert entry["sample"]["rule"] == "debug" and entry["sample"]["sampled_as"] == "watched"
    assert 0 < entry["sample"]["rate"] < 0.05 and isinstance(entry["sample"]["seed"], int)
    also = get_json(f"{receiver.url}/runs/{run.run_id}/candidates/P04975")["path"][0]  # watch=[...] too
    assert also["payload"]["sampled_as"] == "watched" and also["outcome"] == "kept"
    unsampled = get_json(f"{receiver.url}/runs/{run.run_id}/candidates/P00035")["path"][0]
    assert (unsampled["payload"] is None) == (unsampled["sample"]["sampled_as"] is None)  # in the sample or not
    (step,) = get_json(f"{receiver.url}/runs/{run.run_id}/steps")
    assert step["sample"]["counts"]["dropped"]["price_too_high"]["total"] == 5_000 - sum(
        p["price"] <= 30 for p in products)
    assert step["attributes"]["xray.step.funnel"] == "products"
    boundary = [d for d in step["decisions"] if d.get("sampled_as") == "boundary"]
    assert {d["value"] for d in boundary} == {30, 31}
    (hit,) = get_json(f"{receiver.url}/steps?run_name={name}&name=filter_by_price")
    assert hit["sample"]["rule"] == "debug" and hit["sample"]["counts"]["kept"]["sampled"] > 0


def _wait_funnel(url: str, run_id: str, steps: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        reply = call("GET", f"{url}/analyze/{run_id}")
        if reply.status == 200 and len(reply.json()["funnel"]) == steps and reply.json()["run"]["status"] != "RUNNING":
            return
        assert time.monotonic() < deadline, f"run {run_id} not at the receiver: {reply.body[:500]!r}"
        time.sleep(0.3)
