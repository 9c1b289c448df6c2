"""GET /pipelines/{name}/changes and /changes over HTTP against the running receiver: a broken price
filter is flagged naming its step and reason, a stable noisy pipeline flags nothing, too few runs
say so; and the demo pipeline, run through the SDK with its price limit halved, shows up."""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

import pytest

from helpers import call, get_json
from query_data import health_runs
from xray_otel import configure
from xray_otel.demo import competitor_selection as demo
from xray_otel.sdk import build_provider, flush

DAY = timedelta(days=1)
NOW = datetime.now(timezone.utc).replace(microsecond=0)


def spread(rng: random.Random, since: datetime, until: datetime, count: int) -> list[datetime]:
    return sorted(since + (until - since) * rng.random() for _ in range(count))


def pipeline(url: str, *, window_high: float = 0.3, window_runs: int = 40, new_reason: str | None = None,
             seed: int = 1) -> str:
    """40 runs a day for the 7 days before the last 24 hours, then ``window_runs`` in them."""
    name, rng = f"changes_{uuid.uuid4().hex[:8]}", random.Random(seed)
    health_runs(url, name, spread(rng, NOW - 8 * DAY, NOW - DAY, 280), rng)
    health_runs(url, name, spread(rng, NOW - DAY, NOW, window_runs), rng, high_share=window_high,
                new_reason=new_reason)
    return name


def changes(url: str, path: str, **params: Any) -> dict:
    params.setdefault("until", NOW.isoformat())
    return get_json(f"{url}{path}?{urlencode(params)}")


def flagged(body: dict) -> list[tuple]:
    return [(c["step"], c["what"], c["reason"]) for c in body["changes"] if c["significant"]]


@pytest.fixture(scope="module")
def broken(receiver_url: str) -> str:
    return pipeline(receiver_url, window_high=0.6)


def test_a_broken_price_filter_is_flagged_naming_step_and_reason(receiver_url, broken):
    body = changes(receiver_url, f"/pipelines/{broken}/changes")
    assert body["baseline"]["until"] == body["window"]["since"] < body["window"]["until"]
    found = flagged(body)
    assert found[:1] and found[0][0] == "filter_by_price", body["changes"][:3]
    assert ("filter_by_price", "drop_rate", None) in found
    assert ("filter_by_price", "reason_share", "price_too_high") in found
    assert {step for step, _, _ in found} <= {"filter_by_price", "filter_by_rating"}  # rating sees fewer, same rate
    top = body["changes"][0]
    assert top["pipeline"] == broken and top["p_adjusted"] <= 0.01 and top["insufficient_data"] is False
    assert top["runs"] == {"baseline": 280, "window": 40}
    drop = next(c for c in body["changes"] if c["what"] == "drop_rate" and c["step"] == "filter_by_price")
    assert 0.2 < drop["delta"] < 0.4 and drop["delta"] == pytest.approx(drop["window"] - drop["baseline"], abs=1e-5)
    # the example runs are the right sides' runs, and the link opens a comparison of the two
    base, other = drop["examples"]["baseline"][0], drop["examples"]["window"][0]
    assert get_json(f"{receiver_url}/runs/{base}")["started_at"] < body["window"]["since"]
    assert get_json(f"{receiver_url}/runs/{other}")["started_at"] >= body["window"]["since"]
    comparison = get_json(receiver_url + drop["compare"])
    assert (comparison["base"]["id"], comparison["other"]["id"]) == (base, other)


def test_a_stable_noisy_pipeline_flags_nothing(receiver_url):
    for seed in (2, 3, 4):
        name = pipeline(receiver_url, seed=seed)
        body = changes(receiver_url, f"/pipelines/{name}/changes")
        assert body["changes"] and flagged(body) == [], body["changes"][:3]
        assert all(c["p_value"] is not None for c in body["changes"])


def test_a_new_reason_is_flagged(receiver_url):
    name = pipeline(receiver_url, new_reason="out_of_stock", seed=5)
    body = changes(receiver_url, f"/pipelines/{name}/changes")
    new = [c for c in body["changes"] if c["what"] == "reason_new"]
    assert [(c["step"], c["reason"], c["significant"]) for c in new] == [("filter_by_price", "out_of_stock", True)]
    assert new[0]["baseline"] == 0 and 0.03 < new[0]["window"] < 0.2  # its share of the step's rejections
    assert new[0]["examples"]["baseline"] and new[0]["examples"]["window"]


def test_too_few_runs_say_so_rather_than_guess(receiver_url):
    name = pipeline(receiver_url, window_high=0.9, window_runs=5, seed=6)
    body = changes(receiver_url, f"/pipelines/{name}/changes")
    assert flagged(body) == []
    assert body["changes"] and all(c["insufficient_data"] for c in body["changes"])
    assert all(c["p_value"] is None for c in body["changes"])


def test_all_pipelines_rank_the_broken_one_first(receiver_url, broken):
    body = changes(receiver_url, "/changes", limit=5)
    assert body["pipeline"] is None and len(body["changes"]) == 5
    assert body["changes"][0]["pipeline"] == broken and body["changes"][0]["significant"]


@pytest.mark.parametrize("query, message", [
    ("window=abc", "window must be a duration"),
    ("baseline=1s", "baseline must be a duration"),
    ("window=100d", "window must be between 5m and 92d"),
    ("limit=0", "limit must be at least 1"),
    ("windw=1h", "unknown parameter"),
])
def test_bad_parameters_are_a_400_naming_them(receiver_url, broken, query, message):
    for path in (f"/pipelines/{broken}/changes", "/changes"):
        reply = call("GET", f"{receiver_url}{path}?{query}")
        assert reply.status == 400 and message in reply.json()["error"]["message"], reply.body


def test_an_unknown_pipeline_is_a_404(receiver_url):
    assert call("GET", f"{receiver_url}/pipelines/nope_{uuid.uuid4().hex}/changes").status == 404


# --- the demo, through the SDK: "a user who halves its price limit sees the change" ---------------


def _demo_runs(receiver_url: str, count: int) -> None:
    """``count`` runs of the real demo pipeline over the stock OTLP exporter."""
    provider = build_provider("demo-health", endpoint=receiver_url)
    configure(tracer_provider=provider)
    try:
        for _ in range(count):
            with contextlib.suppress(IndexError):  # nothing left to select: the run is recorded as failed
                demo.run_pipeline()
        assert flush(timeout=30)
    finally:
        provider.shutdown()


def test_halving_the_demo_price_limit_shows_on_changes(receiver_url, monkeypatch):
    # each run searches a catalogue of its own (a seed per run, 2,000 products), so runs differ as real traffic does
    seeds, original = list(range(1000, 1100)), demo.search
    monkeypatch.setattr(demo, "search", lambda keywords: original(keywords, count=2000, seed=seeds.pop()))
    _demo_runs(receiver_url, 30)
    broken_from = datetime.now(timezone.utc)
    time.sleep(0.05)

    def halved_price_filter(p: demo.Product) -> tuple[bool, str]:
        if p.price < 0.5 * demo.SELLER_PRODUCT.price:
            return False, "price_too_low"
        return p.price <= 0.75 * demo.SELLER_PRODUCT.price, "price_too_high"  # was 1.5 x

    monkeypatch.setattr(demo, "price_filter", halved_price_filter)
    _demo_runs(receiver_url, 25)
    until = broken_from + timedelta(minutes=5)  # the window holds the broken runs, the baseline the rest
    deadline = time.monotonic() + 30
    while True:  # spans arrive asynchronously: until all runs are in
        body = changes(receiver_url, "/pipelines/competitor_selection/changes", window="5m", baseline="1h",
                       until=until.isoformat())
        if body["changes"] and body["changes"][0]["runs"]["window"] >= 25 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    found = flagged(body)
    assert found[:1] and found[0][0] == "filter_by_price", body["changes"][:3]
    assert ("filter_by_price", "reason_share", "price_too_high") in found
    assert ("filter_by_price", "drop_rate", None) in found
